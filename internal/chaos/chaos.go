// Package chaos runs thaw's chaos experiment (`thaw bench chaos`): a real
// `thaw serve` process, backed by a real MinIO, serves a mix of
// invocations over several functions and restore modes while faults are
// injected one after another: the object store stops and restarts, the
// pager child is killed, a cached chunk is corrupted, snapshot images are
// truncated (one of them under the mappings of mmap instances), a
// thousand slow connections are held open, and a guest loops until its
// timeout throughout.
//
// It reports what a production operator asks of such a day: how many
// requests were sent and answered (ok, or a clear error by category), how
// many were never answered (must be 0), how often the worker process died
// (must be 0), its peak memory and file descriptors, and how long after
// each fault every function served normally again.
package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/build"
	"github.com/thaw-run/thaw/internal/catalog"
	"github.com/thaw-run/thaw/internal/load"
	"github.com/thaw-run/thaw/internal/stats"
	"github.com/thaw-run/thaw/internal/store"
)

// Options configure Run.
type Options struct {
	// Binary is the thaw executable run as the worker (`thaw serve`).
	Binary string
	// Root is the repository root: the examples are built from it and
	// scripts/minio.sh runs the object store.
	Root string
	// Dir is a scratch directory (data, store state, modules).
	Dir string
	// Duration is the length of the load phase; faults are placed at
	// fixed fractions of it. Default 5 minutes.
	Duration time.Duration
	// Rate is the invocations started per second (open loop). Default 10.
	Rate float64
	// SlowConns is how many slow connections the slow-client fault holds
	// open. Default 1000.
	SlowConns int
	// Seed makes the request mix repeatable.
	Seed uint64
	// Log receives progress lines.
	Log io.Writer
}

// Outcome categories of a request.
const (
	OutcomeOK = "ok"
	// OutcomeNeverAnswered is a request that got no HTTP response within
	// its deadline (the function's timeout plus a minute), or whose
	// connection failed: the one outcome a hardened worker never has.
	OutcomeNeverAnswered = "never_answered"
)

// Fault is one injected fault and what followed it.
type Fault struct {
	// Name says what was done.
	Name string `json:"name"`
	// AtS is the offset of the injection from the start of the load, in
	// seconds.
	AtS float64 `json:"at_s"`
	// RecoveryMs is the time from the injection until every probe function
	// had answered 200 to a request sent after it; -1 if that never
	// happened before the run ended.
	RecoveryMs float64 `json:"recovery_ms"`
	// Detail says what the injection touched.
	Detail string `json:"detail,omitempty"`
}

// FunctionStats summarises one function's requests.
type FunctionStats struct {
	Sent     int            `json:"sent"`
	Outcomes map[string]int `json:"outcomes"`
	// Starts counts the answered requests by how their instance started
	// (warm, cold, restore:MODE): a restore that failed shows as cold.
	Starts map[string]int `json:"starts"`
	// P50Ms and P99Ms are latency percentiles of the answered requests.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
}

// Report is the outcome of a run.
type Report struct {
	DurationS float64 `json:"duration_s"`
	Sent      int     `json:"sent"`
	// Outcomes counts requests by outcome: "ok", an error category
	// (timeout, guest_fault, overloaded, unavailable, ...: the worker's
	// X-Thaw-Error-Category, else the HTTP status) or "never_answered".
	Outcomes  map[string]int           `json:"outcomes"`
	Functions map[string]FunctionStats `json:"functions"`
	// WorkerRestarts counts exits of the `thaw serve` process during the
	// run (each is restarted so the run goes on).
	WorkerRestarts int `json:"worker_restarts"`
	// Peak resource use of the worker process (its pager processes are
	// apart).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	PeakFDs      int   `json:"peak_fds"`
	// Fallbacks holds thaw_restore_fallbacks_total at the end, summed over
	// functions and modes, under "total".
	Fallbacks map[string]float64 `json:"fallbacks"`
	Faults    []Fault            `json:"faults"`
	// Samples are the worker's RSS and descriptor counts over time.
	Samples []Sample `json:"samples"`
}

// Sample is one reading of the worker's resources.
type Sample struct {
	AtS      float64 `json:"at_s"`
	RSSBytes int64   `json:"rss_bytes"`
	FDs      int     `json:"fds"`
}

// target is a deployed function and the requests the mix sends it.
type target struct {
	name   string
	pkg    string
	cfg    api.Config
	req    api.InvokeRequest
	weight int
	// probe functions must answer 200 again after every fault; the
	// looping guest's requests are expected to time out.
	probe bool
	// fromStore functions lose their local snapshots before the load, so
	// their restores read the snapshot store.
	fromStore bool
}

// freshShare is the share of a restoring function's requests that ask
// for a fresh instance in its restore mode (the X-Thaw-Mode experiment
// header), so that restores, and the faults that hit them, happen
// throughout the run rather than only when an instance expires.
const freshShare = 0.5

func targets() ([]target, error) {
	req := func(name string) (api.InvokeRequest, error) {
		f, err := catalog.Lookup(name)
		if err != nil {
			return api.InvokeRequest{}, err
		}
		return api.InvokeRequest{Method: f.Request.Method, Path: f.Request.Target, Body: f.Request.Body}, nil
	}
	short := api.Duration(2 * time.Second)
	ts := []target{
		{name: "hello", pkg: "examples/hello", cfg: api.Config{RestoreMode: api.ModeLazy, KeepAlive: short, MemoryMiB: 64}, weight: 4, probe: true},
		{name: "hello-store", pkg: "examples/hello", cfg: api.Config{RestoreMode: api.ModeLazy, KeepAlive: short, MemoryMiB: 64}, weight: 3, probe: true, fromStore: true},
		// mmap maps its image: the truncation step cuts it under live
		// mappings, which must cost a cold boot, not the worker.
		{name: "hello-mmap", pkg: "examples/hello", cfg: api.Config{RestoreMode: api.ModeMmap, KeepAlive: short, MemoryMiB: 64}, weight: 2, probe: true},
		{name: "jsontransform", pkg: "examples/jsontransform", cfg: api.Config{RestoreMode: api.ModeBulk, KeepAlive: short, MemoryMiB: 64}, weight: 3, probe: true, fromStore: true},
		{name: "initheavy", pkg: "examples/initheavy", cfg: api.Config{RestoreMode: api.ModeReap, KeepAlive: short, MemoryMiB: 256}, weight: 2, probe: true},
		{name: "faulty", pkg: "examples/faulty", cfg: api.Config{Timeout: api.Duration(2 * time.Second), KeepAlive: short, MemoryMiB: 64}, weight: 1},
	}
	for i := range ts {
		cat := ts[i].pkg[strings.LastIndex(ts[i].pkg, "/")+1:]
		r, err := req(cat)
		if err != nil {
			return nil, err
		}
		ts[i].req = r
	}
	ts[len(ts)-1].req = api.InvokeRequest{Path: "/loop"}
	return ts, nil
}

// Run performs the experiment.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Duration <= 0 {
		opts.Duration = 5 * time.Minute
	}
	if opts.Rate <= 0 {
		opts.Rate = 10
	}
	if opts.SlowConns <= 0 {
		opts.SlowConns = 1000
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	ts, err := targets()
	if err != nil {
		return nil, err
	}
	r := &run{opts: opts, targets: ts, token: "chaos-token"}
	defer r.cleanup()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	return r.load(ctx)
}

// run is the state of one experiment.
type run struct {
	opts    Options
	targets []target
	token   string

	minioDir string
	endpoint string
	s3Env    []string
	dataDir  string
	addr     string
	serveEnv []string

	mu       sync.Mutex
	serve    *exec.Cmd
	exited   chan struct{}
	restarts int
	stopping bool
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.opts.Log, "chaos: "+format+"\n", args...)
}

// minio runs scripts/minio.sh with the run's private state directory.
func (r *run) minio(cmd string) error {
	c := exec.Command(filepath.Join(r.opts.Root, "scripts", "minio.sh"), cmd)
	c.Env = append(os.Environ(), "THAW_MINIO_DIR="+r.minioDir)
	out, err := c.Output()
	if err != nil {
		return fmt.Errorf("minio.sh %s: %w", cmd, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "export THAW_TEST_S3_ENDPOINT="); ok {
			r.endpoint = v
		}
		if v, ok := strings.CutPrefix(line, "export THAW_TEST_S3_ACCESS_KEY="); ok {
			r.s3Env = append(r.s3Env, "THAW_S3_ACCESS_KEY="+v)
		}
		if v, ok := strings.CutPrefix(line, "export THAW_TEST_S3_SECRET_KEY="); ok {
			r.s3Env = append(r.s3Env, "THAW_S3_SECRET_KEY="+v)
		}
	}
	return nil
}

func (r *run) client() *api.Client {
	return &api.Client{BaseURL: "http://" + r.addr, Token: r.token,
		HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// setup starts MinIO and the worker, deploys the functions, waits until
// their snapshots are in the store, and restarts the worker without the
// local snapshots of the fromStore functions.
func (r *run) setup(ctx context.Context) error {
	r.minioDir = filepath.Join(r.opts.Dir, "minio")
	r.dataDir = filepath.Join(r.opts.Dir, "data")
	if err := r.minio("start"); err != nil {
		return err
	}
	key, err := store.GenerateSecret()
	if err != nil {
		return err
	}
	keyFile := filepath.Join(r.opts.Dir, "store.key")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	r.addr = l.Addr().String()
	l.Close()
	r.serveEnv = append(os.Environ(), r.s3Env...)
	r.serveEnv = append(r.serveEnv, "THAW_TOKEN=")

	if err := r.startServe(ctx, keyFile); err != nil {
		return err
	}
	c := r.client()
	built := map[string][]byte{}
	for _, t := range r.targets {
		wasm, ok := built[t.pkg]
		if !ok {
			out := filepath.Join(r.opts.Dir, filepath.Base(t.pkg)+".wasm")
			r.logf("building %s", t.pkg)
			if err := build.Module(ctx, filepath.Join(r.opts.Root, t.pkg), out); err != nil {
				return err
			}
			if wasm, err = os.ReadFile(out); err != nil {
				return err
			}
			built[t.pkg] = wasm
		}
		r.logf("deploying %s (%s)", t.name, t.cfg.RestoreMode)
		if _, err := c.Deploy(ctx, t.name, wasm, t.cfg); err != nil {
			return fmt.Errorf("deploy %s: %w", t.name, err)
		}
		// One call records the working set of reap and bulk functions.
		if _, err := c.Invoke(ctx, t.name, &t.req); err != nil && t.probe {
			return fmt.Errorf("first call of %s: %w", t.name, err)
		}
	}
	if err := r.waitPublished(ctx, len(r.targets)); err != nil {
		return err
	}
	r.stopServe()
	for _, t := range r.targets {
		if t.fromStore {
			if err := os.RemoveAll(filepath.Join(r.dataDir, "snapshots", t.name)); err != nil {
				return err
			}
		}
	}
	return r.startServe(ctx, keyFile)
}

var listenRE = regexp.MustCompile(`msg=listening url=(http://\S+)`)

// startServe starts `thaw serve` and waits until it listens. It is
// restarted by the watcher if it exits while the run is not stopping.
func (r *run) startServe(ctx context.Context, keyFile string) error {
	args := []string{"serve", "--addr", r.addr, "--data", r.dataDir, "--token", r.token,
		"--s3-endpoint", r.endpoint, "--s3-bucket", "thaw-chaos", "--key-file", keyFile, "--log-level", "warn"}
	cmd := exec.Command(r.opts.Binary, args...)
	cmd.Env = r.serveEnv
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	ready := make(chan struct{}, 1)
	logFile, err := os.OpenFile(filepath.Join(r.opts.Dir, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	go func() {
		defer logFile.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			if listenRE.MatchString(sc.Text()) {
				select {
				case ready <- struct{}{}:
				default:
				}
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		close(exited)
		r.mu.Lock()
		stopping := r.stopping || r.serve != cmd
		if !stopping {
			r.restarts++
		}
		r.mu.Unlock()
		if !stopping {
			r.logf("worker exited unexpectedly (%v); restarting", err)
			if err := r.startServe(context.Background(), keyFile); err != nil {
				r.logf("restart failed: %v", err)
			}
		}
	}()
	r.mu.Lock()
	r.serve, r.exited = cmd, exited
	r.mu.Unlock()
	// The default log level hides the listening line at --log-level warn,
	// so readiness is also polled on /healthz.
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case <-ready:
			return nil
		case <-exited:
			return fmt.Errorf("thaw serve exited during start; see %s", filepath.Join(r.opts.Dir, "serve.log"))
		case <-deadline:
			return errors.New("thaw serve not ready after 2 minutes")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
			if resp, err := http.Get("http://" + r.addr + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
	}
}

// stopServe stops the worker on purpose (not counted as a restart).
func (r *run) stopServe() {
	r.mu.Lock()
	cmd, exited := r.serve, r.exited
	r.serve = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (r *run) cleanup() {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	r.stopServe()
	_ = r.minio("stop")
}

func (r *run) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.serve == nil || r.serve.Process == nil {
		return 0
	}
	return r.serve.Process.Pid
}

// metrics scrapes the worker's /metrics for the named families.
func (r *run) metrics(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	// Bounded: a frozen worker must not freeze the report.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return load.ParseMetrics(resp.Body, "thaw_store_publishes_total", "thaw_restore_fallbacks_total")
}

// waitPublished waits until n snapshots have been published to the store.
func (r *run) waitPublished(ctx context.Context, n int) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		m, err := r.metrics(ctx)
		if err == nil && m["thaw_store_publishes_total"] >= float64(n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("snapshots not published to the store after 3 minutes (%v, %v)", m, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// record is one request's outcome.
type record struct {
	fn      string
	sent    time.Duration
	latency time.Duration
	outcome string
	start   string
}

// load runs the mixed invocations and the fault schedule.
func (r *run) load(ctx context.Context) (*Report, error) {
	start := time.Now()
	end := start.Add(r.opts.Duration)
	var (
		mu      sync.Mutex
		records []record
		wg      sync.WaitGroup
	)
	c := r.client()
	rng := rand.New(rand.NewPCG(r.opts.Seed, 0x6368616f73))
	var weights []int
	for i, t := range r.targets {
		for range t.weight {
			weights = append(weights, i)
		}
	}

	samples := make(chan []Sample, 1)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	go func() { samples <- r.sample(sampleCtx, start) }()

	faults := make(chan []Fault, 1)
	go func() { faults <- r.inject(ctx, start) }()

	interval := time.Duration(float64(time.Second) / r.opts.Rate)
	r.logf("load: %.0f requests/s for %s", r.opts.Rate, r.opts.Duration)
	for next := start; next.Before(end); next = next.Add(interval) {
		select {
		case <-ctx.Done():
			end = time.Now()
		case <-time.After(time.Until(next)):
		}
		if ctx.Err() != nil {
			break
		}
		t := r.targets[weights[rng.IntN(len(weights))]]
		fresh := t.cfg.RestoreMode != "" && rng.Float64() < freshShare
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := r.send(c, t, fresh, start)
			mu.Lock()
			records = append(records, rec)
			mu.Unlock()
		}()
	}
	wg.Wait()
	stopSampling()
	rep := &Report{DurationS: time.Since(start).Seconds(), Samples: <-samples, Faults: <-faults,
		Outcomes: map[string]int{}, Functions: map[string]FunctionStats{}}
	r.mu.Lock()
	rep.WorkerRestarts = r.restarts
	r.mu.Unlock()
	if m, err := r.metrics(ctx); err == nil {
		rep.Fallbacks = map[string]float64{"total": m["thaw_restore_fallbacks_total"]}
	}
	r.summarise(rep, records, start)
	return rep, nil
}

// send makes one invocation and classifies its outcome; fresh asks for a
// new instance in the function's restore mode.
func (r *run) send(c *api.Client, t target, fresh bool, start time.Time) record {
	timeout := 30 * time.Second
	if t.cfg.Timeout > 0 {
		timeout = time.Duration(t.cfg.Timeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	sent := time.Now()
	req := t.req
	if fresh {
		req.Mode = t.cfg.RestoreMode
	}
	resp, err := c.Invoke(ctx, t.name, &req)
	rec := record{fn: t.name, sent: sent.Sub(start), latency: time.Since(sent)}
	if resp != nil {
		rec.start = resp.Start
	}
	var apiErr *api.Error
	switch {
	case err == nil && resp.Status/100 == 2:
		rec.outcome = OutcomeOK
	case err == nil:
		rec.outcome = strconv.Itoa(resp.Status)
	case errors.As(err, &apiErr):
		rec.outcome = apiErr.Category
		if rec.outcome == "" {
			rec.outcome = strconv.Itoa(apiErr.Status)
		}
	default:
		rec.outcome = OutcomeNeverAnswered
	}
	return rec
}

// summarise fills the report's counts, percentiles and recovery times.
func (r *run) summarise(rep *Report, records []record, start time.Time) {
	sort.Slice(records, func(i, j int) bool { return records[i].sent < records[j].sent })
	lat := map[string][]float64{}
	for _, rec := range records {
		rep.Sent++
		rep.Outcomes[rec.outcome]++
		fs := rep.Functions[rec.fn]
		if fs.Outcomes == nil {
			fs.Outcomes, fs.Starts = map[string]int{}, map[string]int{}
		}
		if rec.start != "" {
			fs.Starts[rec.start]++
		}
		fs.Sent++
		fs.Outcomes[rec.outcome]++
		rep.Functions[rec.fn] = fs
		if rec.outcome != OutcomeNeverAnswered {
			lat[rec.fn] = append(lat[rec.fn], float64(rec.latency)/float64(time.Millisecond))
		}
	}
	for fn, xs := range lat {
		fs := rep.Functions[fn]
		fs.P50Ms, fs.P99Ms = stats.Percentile(xs, 50), stats.Percentile(xs, 99)
		rep.Functions[fn] = fs
	}
	for _, s := range rep.Samples {
		rep.PeakRSSBytes = max(rep.PeakRSSBytes, s.RSSBytes)
		rep.PeakFDs = max(rep.PeakFDs, s.FDs)
	}
	for i := range rep.Faults {
		f := &rep.Faults[i]
		at := time.Duration(f.AtS * float64(time.Second))
		f.RecoveryMs = -1
		pending := map[string]bool{}
		for _, t := range r.targets {
			if t.probe {
				pending[t.name] = true
			}
		}
		for _, rec := range records {
			if rec.sent < at || rec.outcome != OutcomeOK || !pending[rec.fn] {
				continue
			}
			delete(pending, rec.fn)
			if len(pending) == 0 {
				f.RecoveryMs = float64(rec.sent+rec.latency-at) / float64(time.Millisecond)
				break
			}
		}
	}
}

// sample reads the worker's and its pager's RSS and descriptors once a
// second until ctx ends.
func (r *run) sample(ctx context.Context, start time.Time) []Sample {
	var out []Sample
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if pid := r.pid(); pid != 0 {
			s := Sample{AtS: time.Since(start).Seconds(), RSSBytes: rss(pid), FDs: fds(pid)}
			out = append(out, s)
		}
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
	}
}

// rss is a process's resident set size from /proc, 0 if unreadable.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// fds counts a process's open file descriptors, 0 if unreadable.
func fds(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

// children lists the direct children of pid (the pager process).
func children(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
