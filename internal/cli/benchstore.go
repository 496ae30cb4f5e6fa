package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/bench"
	"github.com/thaw-run/thaw/internal/catalog"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/s3"
)

// benchStoreOptions are the flags of `thaw bench store`.
type benchStoreOptions struct {
	Function   string
	Modes      []string
	Trials     int
	JSON       bool
	DataDir    string
	S3Endpoint string
	S3Bucket   string
	Dedup      []string
	CPUProfile string
}

// defaultDedupFunctions are ten small catalog functions built with the same
// SDK and Go runtime: what a tenant's snapshots share.
var defaultDedupFunctions = []string{"helloworld", "chameleon", "pyaes", "json_serdes", "matmul", "compression",
	"dynamic_html", "rnn_serving", "video_frames", "image_rotate"}

func newBenchStoreCommand(g *globalOptions) *cobra.Command {
	opts := benchStoreOptions{}
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Time to first response restoring through the snapshot store: local files, warm disk cache, remote only",
		Long: `Snapshot a function (default initheavy-gather: examples/initheavy, /gather?n=8192&seed=1),
record its working set, publish it to the snapshot store on S3, then time a
fresh instance's first response in every restore mode from (a) the local
snapshot files (page cache dropped), (b) the store with a warm local disk
cache (dropped from the page cache), (c) the store with every cache emptied
(remote only). Each store trial uses a fresh store handle and a fresh pager
process, so no decrypted chunk survives in memory between trials. Then puts
ten functions' snapshots into one tenant and reports the dedup ratio.

S3: --s3-endpoint (credentials from $` + envS3AccessKey + `/$` + envS3SecretKey + `), else
$THAW_TEST_S3_ENDPOINT and friends, else a MinIO on loopback started with
scripts/minio.sh. With --json prints one object with a "results" array.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchStore(cmd, g, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Function, "function", "initheavy-gather", "function to measure (see thaw bench restore)")
	f.StringSliceVar(&opts.Modes, "modes", []string{"eager", "mmap", "lazy", "reap", "bulk"}, "modes to measure")
	f.IntVar(&opts.Trials, "trials", 10, "trials per mode and setting")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object instead of a table")
	f.StringVar(&opts.DataDir, "data", "", "scratch directory on the disk to measure (default: a temporary directory)")
	f.StringVar(&opts.S3Endpoint, "s3-endpoint", "", "S3 endpoint host:port")
	f.StringVar(&opts.S3Bucket, "s3-bucket", "thaw-bench", "S3 bucket")
	f.StringVar(&opts.CPUProfile, "cpuprofile", "", "write a CPU profile of the measurements (not the builds) to this file")
	f.StringSliceVar(&opts.Dedup, "dedup-functions", defaultDedupFunctions, "catalog functions whose snapshots share one tenant for the dedup figure (empty: skip)")
	return cmd
}

func runBenchStore(cmd *cobra.Command, g *globalOptions, opts benchStoreOptions) error {
	ctx := cmd.Context()
	modes, err := parseModes(opts.Modes)
	if err != nil {
		return err
	}
	for _, mode := range modes {
		if mode == restore.Cold || mode == restore.Warm {
			return fmt.Errorf("mode %s does not restore from a snapshot: %w", mode, errdefs.ErrInvalid)
		}
	}
	if opts.Trials < 1 {
		return fmt.Errorf("--trials must be at least 1: %w", errdefs.ErrInvalid)
	}
	bf, err := lookupBenchFunction(opts.Function)
	if err != nil {
		return err
	}
	ws, err := newBenchWorkspace(g, opts.DataDir, "thaw-bench-store-")
	if err != nil {
		return err
	}
	defer ws.cleanup()
	root, dir := ws.root, ws.dir
	s3cfg, err := benchS3Config(root, opts, g)
	if err != nil {
		return err
	}
	buildFn := func(name, pkg string) ([]byte, error) { return ws.build(ctx, name, pkg) }
	wasm, err := buildFn(opts.Function, bf.Dir)
	if err != nil {
		return err
	}
	var dedup []bench.Function
	for _, name := range opts.Dedup {
		cf, err := catalog.Lookup(name)
		if err != nil {
			return fmt.Errorf("--dedup-functions: %v: %w", err, errdefs.ErrInvalid)
		}
		w, err := buildFn(name, cf.Dir)
		if err != nil {
			return err
		}
		dedup = append(dedup, bench.Function{Name: name, Wasm: w, MemoryMiB: cf.MemoryMiB})
	}
	secret, err := store.GenerateSecret()
	if err != nil {
		return err
	}
	sb, err := store.ParseSecret(secret)
	if err != nil {
		return err
	}
	if opts.CPUProfile != "" {
		pf, err := os.Create(opts.CPUProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := bench.RunStore(ctx, bench.StoreOptions{
		Function: bench.Function{Name: opts.Function, Wasm: wasm, Request: bench.CatalogRequest(bf.Request)},
		Modes:    modes, Trials: opts.Trials, Dir: dir, S3: s3cfg, Secret: sb, Dedup: dedup, Progress: g.stderr,
	})
	if err != nil {
		return err
	}
	if opts.JSON {
		return rep.WriteJSON(g.stdout)
	}
	fmt.Fprintf(g.stdout, "thaw bench store: %d trials per mode and setting, S3 at %s\n\n", opts.Trials, s3cfg.Endpoint)
	rep.WriteTable(g.stdout)
	return nil
}

// benchS3Config finds the S3 server: the flag, the test environment of
// scripts/minio.sh, or a MinIO started with it now.
func benchS3Config(root string, opts benchStoreOptions, g *globalOptions) (s3.Config, error) {
	c := s3.Config{Endpoint: opts.S3Endpoint, Bucket: opts.S3Bucket, Region: "us-east-1",
		AccessKey: os.Getenv(envS3AccessKey), SecretKey: os.Getenv(envS3SecretKey), Prefix: fmt.Sprintf("bench-%d", os.Getpid())}
	if c.Endpoint != "" {
		return c, nil
	}
	env := map[string]string{}
	if ep := os.Getenv("THAW_TEST_S3_ENDPOINT"); ep != "" {
		for _, k := range []string{"THAW_TEST_S3_ENDPOINT", "THAW_TEST_S3_ACCESS_KEY", "THAW_TEST_S3_SECRET_KEY", "THAW_TEST_S3_REGION"} {
			env[k] = os.Getenv(k)
		}
	} else {
		script := filepath.Join(root, "scripts", "minio.sh")
		fmt.Fprintln(g.stderr, "no S3 endpoint given: starting MinIO with scripts/minio.sh")
		start := exec.Command(script, "start")
		start.Stdout, start.Stderr = g.stderr, g.stderr
		if err := start.Run(); err != nil {
			return c, fmt.Errorf("start MinIO: %v: %w", err, errdefs.ErrUnavailable)
		}
		out, err := exec.Command(script, "env").Output()
		if err != nil {
			return c, fmt.Errorf("MinIO env: %v: %w", err, errdefs.ErrUnavailable)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
			if ok {
				env[k] = strings.Trim(v, `"'`)
			}
		}
	}
	c.Endpoint, c.AccessKey, c.SecretKey = env["THAW_TEST_S3_ENDPOINT"], env["THAW_TEST_S3_ACCESS_KEY"], env["THAW_TEST_S3_SECRET_KEY"]
	if r := env["THAW_TEST_S3_REGION"]; r != "" {
		c.Region = r
	}
	if c.Endpoint == "" {
		return c, fmt.Errorf("no S3 endpoint: %w", errdefs.ErrUnavailable)
	}
	return c, nil
}
