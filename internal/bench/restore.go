package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/catalog"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/stats"
	"github.com/thaw-run/thaw/internal/timeline"
	"github.com/thaw-run/thaw/internal/worker"
)

// Function is a benchmarked function: its module and the request to send.
type Function struct {
	Name    string
	Wasm    []byte
	Request abi.Request
	// MemoryMiB overrides the default memory cap.
	MemoryMiB int
}

// CatalogRequest is the worker request of a catalog request: what every
// benchmark sends a catalogued function.
func CatalogRequest(r catalog.Request) abi.Request {
	path, query := r.Path()
	h := http.Header{}
	for k, v := range r.Header {
		h[k] = append([]string(nil), v...)
	}
	return abi.Request{Method: r.Method, Path: path, RawQuery: query, Header: h, Body: r.Body}
}

// RestoreOptions configure RunRestore.
type RestoreOptions struct {
	Functions []Function
	Modes     []restore.Mode
	Trials    int
	// DataDir is a scratch data directory on the disk being measured.
	DataDir string
	// Progress, if set, receives one line per function and mode.
	Progress io.Writer
	// RegionPoolMiB is the worker's region pool (worker.Options; 0: the
	// default, negative: none, every restore takes a new region).
	RegionPoolMiB int
	// Engine runs the guests ("": engine.Default()).
	Engine string
}

// RestoreResult is one function and mode over all trials.
type RestoreResult struct {
	Function string  `json:"function"`
	Mode     string  `json:"mode"`
	Trials   int     `json:"trials"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	StartP50 float64 `json:"start_p50_ms"`
	// Stage medians of the start: region set-up (map), working-set
	// prefetch, and wazero instantiation of the restore module.
	MapP50         float64 `json:"map_p50_ms"`
	PrefetchP50    float64 `json:"prefetch_p50_ms"`
	InstantiateP50 float64 `json:"instantiate_p50_ms"`
	ExecP50        float64 `json:"exec_p50_ms"`
	Faults         int64   `json:"faults"`
	BytesRead      int64   `json:"bytes_read"`
	WSBytes        int64   `json:"ws_bytes"`
	Fallbacks      int     `json:"fallbacks"`
	// Reused counts trials whose region came from the region pool.
	Reused int `json:"reused"`
	// Timeline is, for a restore, the median time from its start to each
	// point of it (timeline.Points) the trials reached, in order.
	Timeline []TimelinePoint `json:"timeline,omitempty"`
}

// TimelinePoint is the median time from the start of a restore to one
// point of it, over the Trials that reached it.
type TimelinePoint struct {
	Point  string  `json:"point"`
	P50us  float64 `json:"p50_us"`
	Trials int     `json:"trials"`
}

// Physical is the reference figure for a function: reading its working set
// sequentially from the cold file, plus one warm invocation.
type Physical struct {
	Function string `json:"function"`
	WSBytes  int64  `json:"ws_bytes"`
	// ReadP50ms is the faster of the two ways to read the cold file:
	// through the page cache, or with direct I/O (as bulk does).
	ReadP50ms float64 `json:"ws_read_p50_ms"`
	// BufferedP50ms and DirectP50ms are the two reads; DirectP50ms is 0
	// if the file system refuses O_DIRECT.
	BufferedP50ms float64 `json:"ws_read_buffered_p50_ms"`
	DirectP50ms   float64 `json:"ws_read_direct_p50_ms,omitempty"`
	WarmP50ms     float64 `json:"warm_p50_ms"`
	TotalP50ms    float64 `json:"physical_plus_warm_ms"`
	// FirstP50ms is the first call of a fresh instance whose memory is all
	// present and which takes no page fault (eager's exec, same run), and
	// FirstTotalP50ms the read plus it: a floor that counts what any fresh
	// instance's first call costs beyond a warm one (docs/restore.md,
	// "What the first call pays for"). Both are 0 without an eager row.
	FirstP50ms      float64 `json:"first_call_p50_ms,omitempty"`
	FirstTotalP50ms float64 `json:"physical_plus_first_ms,omitempty"`
}

// addFirst sets the floor with a fresh instance's first call from the
// eager row of results, if there is one.
func (p *Physical) addFirst(results []RestoreResult) {
	for _, r := range results {
		if r.Mode == string(restore.Eager) && r.ExecP50 > 0 {
			p.FirstP50ms, p.FirstTotalP50ms = r.ExecP50, p.ReadP50ms+r.ExecP50
		}
	}
}

// RestoreReport is the output of RunRestore.
type RestoreReport struct {
	Machine Machine `json:"machine"`
	Trials  int     `json:"trials"`
	// RegionPoolMiB is the region pool the worker ran with (0: the
	// default, negative: none).
	RegionPoolMiB int             `json:"region_pool_mib"`
	Results       []RestoreResult `json:"results"`
	Physical      []Physical      `json:"physical"`
	// Ratios compare modes per function: e.g. "lazy/reap" is lazy's p50
	// divided by reap's.
	Ratios map[string]map[string]float64 `json:"ratios"`
	// Engine is the engine the guests ran on ("" in reports from before
	// the field: wazero).
	Engine string `json:"engine"`
	// Deploys time each function's one deploy, stage by stage.
	Deploys []DeployTiming `json:"deploys"`
}

// DeployTiming is one deploy's wall time and its stages (worker.Deploy's
// progress: compile, boot, snapshot, commit), in milliseconds.
type DeployTiming struct {
	Function   string  `json:"function"`
	TotalMs    float64 `json:"total_ms"`
	CompileMs  float64 `json:"compile_ms"`
	BootMs     float64 `json:"boot_ms"`
	SnapshotMs float64 `json:"snapshot_ms"`
	CommitMs   float64 `json:"commit_ms"`
}

// timeDeploy deploys fn on w and times the deploy's stages.
func timeDeploy(ctx context.Context, w *worker.Worker, fn Function, cfg worker.Config) (DeployTiming, error) {
	t := DeployTiming{Function: fn.Name}
	stages := map[api.DeployStage]*float64{api.StageCompile: &t.CompileMs, api.StageBoot: &t.BootMs,
		api.StageSnapshot: &t.SnapshotMs, api.StageCommit: &t.CommitMs}
	var cur *float64
	t0 := time.Now()
	last := t0
	// Each stage's time runs from its start to the next stage's.
	mark := func(s api.DeployStage) {
		now := time.Now()
		if cur != nil {
			*cur = ms(now.Sub(last))
		}
		cur, last = stages[s], now
	}
	_, err := w.Deploy(worker.WithDeployProgress(ctx, mark), fn.Name, fn.Wasm, cfg)
	mark("")
	t.TotalMs = ms(time.Since(t0))
	return t, err
}

// Machine records where a benchmark ran.
type Machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	CPUs       int    `json:"cpus"`
	GoVersion  string `json:"go_version"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Time       string `json:"time"`
}

// ThisMachine describes the running machine.
func ThisMachine() Machine {
	return Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), Time: time.Now().UTC().Format(time.RFC3339)}
}

// RunRestore deploys each function on a private worker and measures the
// time from request to first response of a fresh instance in every mode,
// with the snapshot's files evicted from the page cache before each trial.
func RunRestore(ctx context.Context, opts RestoreOptions) (*RestoreReport, error) {
	if opts.Trials < 1 {
		return nil, fmt.Errorf("trials must be at least 1")
	}
	w, err := worker.Open(ctx, worker.Options{DataDir: opts.DataDir, RegionPoolMiB: opts.RegionPoolMiB, Engine: opts.Engine})
	if err != nil {
		return nil, err
	}
	defer w.Close(ctx)
	rep := &RestoreReport{RegionPoolMiB: opts.RegionPoolMiB, Machine: ThisMachine(), Trials: opts.Trials,
		Ratios: map[string]map[string]float64{}, Engine: opts.Engine}
	if rep.Engine == "" {
		rep.Engine = engine.Default()
	}
	for _, fn := range opts.Functions {
		// One instance at a time: an idle instance that maps the image
		// would pin its pages in the page cache and make the next "cold"
		// trial warm.
		cfg := worker.Config{MemoryMiB: fn.MemoryMiB, MaxInstances: 1, RestoreMode: api.ModeBulk, KeepAlive: api.Duration(time.Hour)}
		dt, err := timeDeploy(ctx, w, fn, cfg)
		if err != nil {
			return nil, fmt.Errorf("deploy %s: %w", fn.Name, err)
		}
		rep.Deploys = append(rep.Deploys, dt)
		// Record the working set with one restore, as REAP's first
		// invocation after a snapshot does.
		if _, err := w.Invoke(ctx, fn.Name, cloneReq(&fn.Request), worker.InvokeOptions{Mode: restore.Reap}); err != nil {
			return nil, fmt.Errorf("%s: record working set: %w", fn.Name, err)
		}
		results, phys, err := measureModes(ctx, w, fn, opts)
		if err != nil {
			return nil, err
		}
		phys.addFirst(results)
		byMode := map[string]float64{"physical+warm": phys.TotalP50ms}
		if phys.FirstTotalP50ms > 0 {
			byMode["physical+first"] = phys.FirstTotalP50ms
		}
		for _, r := range results {
			byMode[r.Mode] = r.P50ms
		}
		rep.Results = append(rep.Results, results...)
		rep.Physical = append(rep.Physical, phys)
		rep.Ratios[fn.Name] = ratios(byMode)
	}
	return rep, nil
}

// measureModes measures fn in every mode of opts and its floor, the
// floor's reads in turns with bulk's trials, the mode it bounds, so that
// the disk's and the machine's drift over the run affects both alike.
func measureModes(ctx context.Context, w *worker.Worker, fn Function, opts RestoreOptions) ([]RestoreResult, Physical, error) {
	floor, err := newFloorMeter(w, fn, opts.DataDir)
	if err != nil {
		return nil, Physical{}, err
	}
	defer floor.close()
	var results []RestoreResult
	for _, mode := range opts.Modes {
		var after func(context.Context) error
		if mode == restore.Bulk {
			after = floor.read
		}
		r, err := measureMode(ctx, w, fn, mode, opts.Trials, after)
		if err != nil {
			return nil, Physical{}, err
		}
		results = append(results, r)
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "%-12s %-6s p50 %8.2f ms  p99 %8.2f ms  faults %6d\n", r.Function, r.Mode, r.P50ms, r.P99ms, r.Faults)
		}
	}
	// The warm call is timed on a long-lived instance (a restored one's
	// second call still pays for the pages it is the first to touch),
	// each after a cold read as in a restore.
	for range opts.Trials {
		if err := floor.warm(ctx); err != nil {
			return nil, Physical{}, err
		}
	}
	return results, floor.result(), nil
}

func cloneReq(r *abi.Request) *abi.Request {
	c := *r
	c.Body = append([]byte(nil), r.Body...)
	return &c
}

// measureMode runs trials fresh starts of fn in mode, and after each, if
// set, after (untimed here).
func measureMode(ctx context.Context, w *worker.Worker, fn Function, mode restore.Mode, trials int, after func(context.Context) error) (RestoreResult, error) {
	r := RestoreResult{Function: fn.Name, Mode: string(mode), Trials: trials}
	var lat, start, exec, mapT, pre, inst []float64
	var faults, bytes, ws []int64
	points := map[timeline.Point][]float64{}
	timeline.Enable(true)
	defer timeline.Enable(false)
	for i := 0; i < trials; i++ {
		opts := worker.InvokeOptions{Mode: mode, DropCache: true}
		if mode == restore.Warm {
			opts.DropCache = false
		} else if err := w.Evict(ctx, fn.Name); err != nil {
			// Tear the last trial's instance down untimed: a platform
			// retires idle instances off the request path.
			return r, fmt.Errorf("%s/%s trial %d: evict: %w", fn.Name, mode, i, err)
		}
		// As thaw serve does: the instance settles after the response.
		actx, settle := worker.WithAfterResponse(ctx)
		t0 := time.Now()
		res, err := w.Invoke(actx, fn.Name, cloneReq(&fn.Request), opts)
		d := time.Since(t0)
		timeline.Mark(timeline.Response)
		settle.Run()
		// What follows (the floor's read, the next trial) starts once the
		// instance has settled: its thaw_idle collection on the other
		// core slowed the floor's read of hello's working set by a
		// quarter (docs/restore.md), and a warm trial would wait for it.
		w.WaitCheckpoints(fn.Name)
		for p, at := range timeline.Take() {
			points[p] = append(points[p], float64(at.Nanoseconds())/1e3)
		}
		if err != nil {
			return r, fmt.Errorf("%s/%s trial %d: %w", fn.Name, mode, i, err)
		}
		// The cache drop prepares the experiment; it is not the start's.
		lat = append(lat, ms(d-res.Timing.DropCache))
		start = append(start, ms(res.Timing.Start))
		exec = append(exec, ms(res.Timing.Exec))
		if res.Timing.Fallback != "" {
			r.Fallbacks++
		}
		inst = append(inst, ms(res.Timing.Instantiate))
		if st := res.Timing.Restore; st != nil {
			mapT = append(mapT, ms(st.Map))
			pre = append(pre, ms(st.Prefetch))
			faults = append(faults, st.Faults)
			bytes = append(bytes, st.BytesRead)
			ws = append(ws, st.WSBytes)
			if st.Reused {
				r.Reused++
			}
		}
		if after != nil {
			if err := after(ctx); err != nil {
				return r, err
			}
		}
	}
	r.P50ms, r.P99ms = stats.Percentile(lat, 50), stats.Percentile(lat, 99)
	r.StartP50, r.ExecP50 = stats.Percentile(start, 50), stats.Percentile(exec, 50)
	r.MapP50, r.PrefetchP50, r.InstantiateP50 = stats.Percentile(mapT, 50), stats.Percentile(pre, 50), stats.Percentile(inst, 50)
	r.Faults, r.BytesRead, r.WSBytes = stats.Percentile(faults, 50), stats.Percentile(bytes, 50), stats.Percentile(ws, 50)
	for _, p := range timeline.Points {
		if at := points[p]; len(at) > 0 && p != timeline.Start {
			r.Timeline = append(r.Timeline, TimelinePoint{Point: string(p), P50us: stats.Percentile(at, 50), Trials: len(at)})
		}
	}
	return r, nil
}

// floorMeter measures the floor a restore from this disk could reach: a
// read of the cold working-set file and a warm invocation, a trial at a
// time, so that its trials can go in turns with a mode's.
type floorMeter struct {
	w    *worker.Worker
	fn   Function
	path string
	// buf is page-aligned (direct I/O needs it), backed by transparent
	// huge pages so that a direct read hands the disk 64 KiB segments, as
	// bulk's staged read does (docs/restore.md, "Staged direct reads"),
	// and touched before any trial: on a VM a new buffer's first touch
	// costs more than the read ("Region pool"). Its capacity is the
	// whole mapping (restore.MapHuge rounds up to a huge page).
	buf                     []byte
	buffered, direct, warms []float64
	noDirect                bool // the file system refuses O_DIRECT
	// interleaved is set once reads went in turns with a mode's trials:
	// the reads before the warm calls are then not counted.
	interleaved bool
	reads       int
}

func newFloorMeter(w *worker.Worker, fn Function, dataDir string) (*floorMeter, error) {
	info, err := w.Get(fn.Name)
	if err != nil || info.Snapshot == nil {
		return nil, fmt.Errorf("%s: no snapshot for the physical figure", fn.Name)
	}
	path := fmt.Sprintf("%s/snapshots/%s/%s/%s", dataDir, fn.Name, info.Snapshot.ID, snapshot.WSImageFile)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: working set: %w", fn.Name, err)
	}
	buf, err := restore.MapHuge(int(max(fi.Size(), 1)))
	if err != nil {
		return nil, err
	}
	buf = buf[:fi.Size()]
	for i := 0; i < len(buf); i += snapshot.PageSize {
		buf[i] = 1
	}
	return &floorMeter{w: w, fn: fn, path: path, buf: buf}, nil
}

// read reads the cold file both ways, through the page cache and with
// direct I/O (as bulk does), in an order that alternates from read to
// read.
func (f *floorMeter) read(context.Context) error {
	f.interleaved = true
	return f.readBoth(true)
}

// readBoth is read, counted if record.
func (f *floorMeter) readBoth(record bool) error {
	f.reads++
	for _, d := range []bool{f.reads%2 == 1, f.reads%2 == 0} {
		if d && f.noDirect {
			continue
		}
		if err := snapshot.DropFileCache(f.path); err != nil {
			return err
		}
		t0 := time.Now()
		err := readFile(f.path, f.buf, d)
		dt := ms(time.Since(t0))
		switch {
		case d && errors.Is(err, unix.EINVAL):
			f.noDirect = true
		case err != nil:
			return fmt.Errorf("%s: read working set: %w", f.fn.Name, err)
		case !record:
		case d:
			f.direct = append(f.direct, dt)
		default:
			f.buffered = append(f.buffered, dt)
		}
	}
	return nil
}

// warm reads the cold file, counted unless reads were interleaved, and
// times one warm invocation.
func (f *floorMeter) warm(ctx context.Context) error {
	if err := f.readBoth(!f.interleaved); err != nil {
		return err
	}
	actx, after := worker.WithAfterResponse(ctx)
	t1 := time.Now()
	_, err := f.w.Invoke(actx, f.fn.Name, cloneReq(&f.fn.Request), worker.InvokeOptions{Mode: restore.Warm})
	d := time.Since(t1)
	after.Run()
	f.w.WaitCheckpoints(f.fn.Name) // the next read starts once the instance has settled
	if err != nil {
		return err
	}
	f.warms = append(f.warms, ms(d))
	return nil
}

// result is the floor: the faster of the two reads' medians plus the warm
// call's.
func (f *floorMeter) result() Physical {
	p := Physical{Function: f.fn.Name, WSBytes: int64(len(f.buf))}
	p.BufferedP50ms, p.WarmP50ms = stats.Percentile(f.buffered, 50), stats.Percentile(f.warms, 50)
	p.ReadP50ms = p.BufferedP50ms
	if len(f.direct) > 0 {
		p.DirectP50ms = stats.Percentile(f.direct, 50)
		p.ReadP50ms = min(p.ReadP50ms, p.DirectP50ms)
	}
	p.TotalP50ms = p.ReadP50ms + p.WarmP50ms
	return p
}

func (f *floorMeter) close() { _ = unix.Munmap(f.buf[:cap(f.buf)]) }

// readFile reads the whole of a file in order into buf, which is its size:
// with direct I/O, or through the page cache, the kernel told up front that
// all of it will be wanted (FADV_SEQUENTIAL, FADV_WILLNEED), as bulk tells
// it for its buffered read. The floor must read at least as cleverly as the
// mode it bounds.
func readFile(path string, buf []byte, direct bool) error {
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	if direct {
		flags |= unix.O_DIRECT
	}
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if !direct {
		_ = unix.Fadvise(fd, 0, 0, unix.FADV_SEQUENTIAL)
		_ = unix.Fadvise(fd, 0, 0, unix.FADV_WILLNEED)
	}
	for off := 0; off < len(buf); {
		n, err := unix.Pread(fd, buf[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		off += n
	}
	return nil
}

// ratios divides every pair of interesting modes' medians.
func ratios(p50 map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, pair := range [][2]string{{"lazy", "reap"}, {"reap", "bulk"}, {"cold", "bulk"}, {"cold", "reap"},
		{"mmap", "bulk"}, {"eager", "bulk"}, {"bulk", "physical+warm"}, {"reap", "physical+warm"}, {"bulk", "physical+first"}} {
		a, okA := p50[pair[0]]
		b, okB := p50[pair[1]]
		if okA && okB && b > 0 {
			out[pair[0]+"/"+pair[1]] = a / b
		}
	}
	return out
}

// WriteTable prints the report for people.
func (r *RestoreReport) WriteTable(out io.Writer) {
	fmt.Fprintf(out, "engine %s\n", r.Engine)
	for _, d := range r.Deploys {
		fmt.Fprintf(out, "%s: deploy %.2f ms (compile %.2f, boot %.2f, snapshot %.2f, commit %.2f)\n",
			d.Function, d.TotalMs, d.CompileMs, d.BootMs, d.SnapshotMs, d.CommitMs)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "function\tmode\ttrials\tp50 ms\tp99 ms\tstart\tmap\tprefetch\tinstantiate\texec\tfaults\tbytes read\tws bytes\tfallbacks\t")
	for _, x := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t%d\t\n", x.Function, x.Mode, x.Trials, x.P50ms, x.P99ms,
			x.StartP50, x.MapP50, x.PrefetchP50, x.InstantiateP50, x.ExecP50, x.Faults, x.BytesRead, x.WSBytes, x.Fallbacks, x.Reused)
	}
	tw.Flush()
	fmt.Fprintln(out)
	for _, p := range r.Physical {
		fmt.Fprintf(out, "%s: physical: read %d B of working set cold in %.2f ms (buffered %.2f, direct %.2f) + warm call %.2f ms = %.2f ms\n",
			p.Function, p.WSBytes, p.ReadP50ms, p.BufferedP50ms, p.DirectP50ms, p.WarmP50ms, p.TotalP50ms)
		if p.FirstTotalP50ms > 0 {
			fmt.Fprintf(out, "%s: with a fresh instance's first call instead (eager's exec) %.2f ms: %.2f ms\n", p.Function, p.FirstP50ms, p.FirstTotalP50ms)
		}
		rs := r.Ratios[p.Function]
		keys := make([]string, 0, len(rs))
		for k := range rs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(out, "  %-22s %6.2fx\n", k, rs[k])
		}
	}
	for _, x := range r.Results {
		if len(x.Timeline) == 0 {
			continue
		}
		fmt.Fprintf(out, "%s %s timeline, µs from the start (p50):", x.Function, x.Mode)
		for _, p := range x.Timeline {
			fmt.Fprintf(out, " %s %.0f", p.Point, p.P50us)
		}
		fmt.Fprintln(out)
	}
}

// WriteJSON prints the report as one JSON object.
func (r *RestoreReport) WriteJSON(out io.Writer) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
