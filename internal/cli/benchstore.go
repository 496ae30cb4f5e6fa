package cli

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/bench"
	"github.com/thaw-run/thaw/internal/catalog"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/store"
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
	Engine     string
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
	engineFlag(f, &opts.Engine)
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
	s3cfg, err := bench.FindS3(ctx, bench.S3Options{Root: root, Endpoint: opts.S3Endpoint, Bucket: opts.S3Bucket,
		AccessKey: os.Getenv(envS3AccessKey), SecretKey: os.Getenv(envS3SecretKey), Progress: g.stderr})
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
		Modes:    modes, Trials: opts.Trials, Dir: dir, S3: s3cfg, Secret: sb, Dedup: dedup, Progress: g.stderr, Engine: opts.Engine,
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
