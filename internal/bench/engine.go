package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/bench/bare"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/report"
	"github.com/thaw-run/thaw/internal/stats"
)

// EngineFunction is a function `thaw bench engine` measures.
type EngineFunction struct {
	Name    string
	Wasm    []byte
	Request abi.Request
	// MemoryMiB caps the linear memory (0: 128 MiB).
	MemoryMiB int
	// Native is the function's native harness (BuildNative), or "" when
	// it has none; NativeSkip then says why.
	Native     string
	NativeSkip string
}

// EngineOptions configure RunEngine.
type EngineOptions struct {
	Functions []EngineFunction
	// Engines are registered engine names and Native, measured in this
	// order in the first trial.
	Engines []string
	// Trials is the number of warm calls and of cold boots per function
	// and engine.
	Trials int
	// Timeout bounds each call (default 1 minute), InitTimeout each
	// initialisation (default 10 minutes).
	Timeout, InitTimeout time.Duration
	// Progress, if set, receives a line per function and engine.
	Progress io.Writer
	// Meta describes the run; the report carries it.
	Meta report.Meta
}

// EngineResult is one function on one engine over all trials.
type EngineResult struct {
	Function string `json:"function"`
	Engine   string `json:"engine"`
	// Skipped says why the function was not measured on this engine (a
	// JavaScript function has no native floor); the figures are then
	// absent.
	Skipped string `json:"skipped,omitempty"`
	Trials  int    `json:"trials,omitempty"`
	// Warm calls on one instance booted before the trials: the call as
	// the worker makes it (encode, thaw_alloc, copy, thaw_handle, decode).
	WarmP50us float64 `json:"warm_p50_us,omitempty"`
	WarmP99us float64 `json:"warm_p99_us,omitempty"`
	// Cold starts with the module compiled: a boot (instantiate and
	// _initialize; natively, process start and the package's init) and
	// the first request.
	ColdP50ms float64 `json:"cold_p50_ms,omitempty"`
	ColdP99ms float64 `json:"cold_p99_ms,omitempty"`
	// The cold start's stages (medians): the boot, its two halves
	// (engines only), and the first request.
	BootP50ms        float64 `json:"boot_p50_ms,omitempty"`
	InstantiateP50ms float64 `json:"instantiate_p50_ms,omitempty"`
	InitP50ms        float64 `json:"init_p50_ms,omitempty"`
	FirstP50ms       float64 `json:"first_p50_ms,omitempty"`
	// CompileMs is the one compilation before the trials (engines only;
	// no compilation cache on disk).
	CompileMs float64 `json:"compile_ms,omitempty"`
}

// EngineReport is the output of RunEngine.
type EngineReport struct {
	Meta    report.Meta    `json:"meta"`
	Trials  int            `json:"trials"`
	Engines []string       `json:"engines"`
	Results []EngineResult `json:"results"`
	// Ratios compare engines per function, medians of one run: "wazero/
	// wasmtime warm" is wazero's warm p50 divided by wasmtime's, and
	// "E/native cold" an engine's cold p50 over the native floor's.
	Ratios map[string]map[string]float64 `json:"ratios"`
}

// Rotation is the order engines are measured in at trial (0-based): the
// list rotated left by trial, so that over len(names) consecutive trials
// every engine runs once in every position: none always runs first, on
// caches and a heap that no other engine has just used, or last.
func Rotation(names []string, trial int) []string {
	if len(names) == 0 {
		return nil
	}
	k := trial % len(names)
	return append(slices.Clone(names[k:]), names[:k]...)
}

// DefaultEngines are the engines `thaw bench engine` measures unless told:
// every registered engine, most preferred first, then the bare wasmtime
// embedding if the build has it, then the native floor.
func DefaultEngines() []string {
	names := engine.Names()
	if bare.Available {
		names = append(names, Bare)
	}
	return append(names, Native)
}

// CheckEngines checks that every name is a registered engine, Bare (in a
// build with cgo) or Native, and none twice, before anything is built.
func CheckEngines(names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("no engines to measure: %w", errdefs.ErrInvalid)
	}
	for i, n := range names {
		if slices.Contains(names[:i], n) {
			return fmt.Errorf("engine %q named twice: %w", n, errdefs.ErrInvalid)
		}
		switch {
		case n == Native || slices.Contains(engine.Names(), n) || n == Bare && bare.Available:
			continue
		case n == Bare:
			_, err := bare.New()
			return err
		}
		// Open says why: not in this build, or unknown.
		if _, err := engine.Open(context.Background(), n, engine.Config{}); err != nil {
			return err
		}
		return fmt.Errorf("engine %q is not registered: %w", n, errdefs.ErrInvalid)
	}
	return nil
}

// contestant is a function made ready on one engine: compiled (or built),
// with a warm instance that has served its first request.
type contestant interface {
	// warm times one call on the warm instance.
	warm(ctx context.Context) (time.Duration, error)
	// cold times a new instance's boot and first request, then closes it.
	cold(ctx context.Context) (coldSample, error)
	close(ctx context.Context)
}

// coldSample is one cold start.
type coldSample struct {
	total, boot, instantiate, init, first time.Duration
}

// samples are one function's measurements on one engine.
type samples struct {
	warmUs                                []float64
	coldMs, bootMs, instMs, initMs, first []float64
}

// RunEngine measures, for each function, warm calls and cold starts on
// every engine, engines interleaved trial by trial in Rotation order.
func RunEngine(ctx context.Context, opts EngineOptions) (*EngineReport, error) {
	if opts.Trials < 1 {
		return nil, fmt.Errorf("trials must be at least 1: %w", errdefs.ErrInvalid)
	}
	if err := CheckEngines(opts.Engines); err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Minute
	}
	if opts.InitTimeout <= 0 {
		opts.InitTimeout = 10 * time.Minute
	}
	var env engineEnv
	defer env.close(ctx)
	for _, n := range opts.Engines {
		if err := env.open(ctx, n); err != nil {
			return nil, err
		}
	}
	rep := &EngineReport{Meta: opts.Meta, Trials: opts.Trials, Engines: opts.Engines, Ratios: map[string]map[string]float64{}}
	for _, fn := range opts.Functions {
		res, err := measureFunction(ctx, opts, &env, fn)
		if err != nil {
			return nil, err
		}
		rep.Results = append(rep.Results, res...)
		rep.Ratios[fn.Name] = engineRatios(res)
		if opts.Progress != nil {
			writeRows(opts.Progress, res)
		}
	}
	return rep, nil
}

// engineEnv holds the engines of a run, each opened once.
type engineEnv struct {
	engines map[string]engine.Engine
	bare    *bare.Engine
}

// open opens the engine n, if it is not the native floor.
func (env *engineEnv) open(ctx context.Context, n string) error {
	var err error
	switch n {
	case Native:
	case Bare:
		env.bare, err = bare.New()
	default:
		var e engine.Engine
		if e, err = engine.Open(ctx, n, engine.Config{}); err == nil {
			if env.engines == nil {
				env.engines = map[string]engine.Engine{}
			}
			env.engines[n] = e
		}
	}
	return err
}

func (env *engineEnv) close(ctx context.Context) {
	for _, e := range env.engines {
		_ = e.Close(ctx)
	}
	if env.bare != nil {
		env.bare.Close()
	}
}

// measureFunction readies fn on every engine and runs the trials.
func measureFunction(ctx context.Context, opts EngineOptions, env *engineEnv, fn EngineFunction) ([]EngineResult, error) {
	mem := fn.MemoryMiB
	if mem <= 0 {
		mem = 128
	}
	cfg := engine.InstanceConfig{MemoryLimit: uint64(mem) << 20, Timeout: opts.Timeout, InitTimeout: opts.InitTimeout}
	results := make([]EngineResult, len(opts.Engines))
	cs := map[string]contestant{}
	defer func() {
		for _, c := range cs {
			c.close(ctx)
		}
	}()
	var ref *abi.Response
	var refEngine string
	var measured []string
	for i, n := range opts.Engines {
		results[i] = EngineResult{Function: fn.Name, Engine: n, Trials: opts.Trials}
		var c contestant
		var first *abi.Response
		var err error
		switch {
		case n == Native && fn.Native == "":
			results[i] = EngineResult{Function: fn.Name, Engine: n, Skipped: fn.NativeSkip}
			continue
		case n == Native:
			c, first, err = newNativeContestant(fn, opts.Timeout, opts.InitTimeout)
		case n == Bare:
			c, first, results[i].CompileMs, err = newBareContestant(env.bare, fn)
		default:
			c, first, results[i].CompileMs, err = newEngineContestant(ctx, env.engines[n], fn, cfg)
		}
		if err != nil {
			return nil, fmt.Errorf("%s on %s: %w", fn.Name, n, err)
		}
		cs[n] = c
		measured = append(measured, n)
		if ref == nil {
			ref, refEngine = first, n
		} else if err := sameResponse(ref, first); err != nil {
			return nil, fmt.Errorf("%s: %s and %s answer differently: %w", fn.Name, refEngine, n, err)
		}
	}
	byEngine := map[string]*samples{}
	for _, n := range measured {
		byEngine[n] = &samples{}
	}
	for t := 0; t < opts.Trials; t++ {
		order := Rotation(measured, t)
		for _, n := range order {
			d, err := cs[n].warm(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s on %s: warm call %d: %w", fn.Name, n, t, err)
			}
			byEngine[n].warmUs = append(byEngine[n].warmUs, float64(d)/float64(time.Microsecond))
		}
		for _, n := range order {
			c, err := cs[n].cold(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s on %s: cold start %d: %w", fn.Name, n, t, err)
			}
			s := byEngine[n]
			s.coldMs = append(s.coldMs, ms(c.total))
			s.bootMs = append(s.bootMs, ms(c.boot))
			s.instMs = append(s.instMs, ms(c.instantiate))
			s.initMs = append(s.initMs, ms(c.init))
			s.first = append(s.first, ms(c.first))
		}
	}
	for i := range results {
		s, ok := byEngine[results[i].Engine]
		if !ok {
			continue
		}
		r := &results[i]
		r.WarmP50us, r.WarmP99us = stats.Percentile(s.warmUs, 50), stats.Percentile(s.warmUs, 99)
		r.ColdP50ms, r.ColdP99ms = stats.Percentile(s.coldMs, 50), stats.Percentile(s.coldMs, 99)
		r.BootP50ms, r.FirstP50ms = stats.Percentile(s.bootMs, 50), stats.Percentile(s.first, 50)
		r.InstantiateP50ms, r.InitP50ms = stats.Percentile(s.instMs, 50), stats.Percentile(s.initMs, 50)
	}
	return results, nil
}

// sameResponse checks that two engines gave one request the same answer.
// Statuses must agree; bodies too, which the catalog's default requests
// make deterministic.
func sameResponse(a, b *abi.Response) error {
	if a.Status != b.Status {
		return fmt.Errorf("status %d against %d: %w", a.Status, b.Status, errdefs.ErrGuest)
	}
	if !bytes.Equal(a.Body, b.Body) {
		return fmt.Errorf("bodies of %d and %d bytes differ: %w", len(a.Body), len(b.Body), errdefs.ErrGuest)
	}
	return nil
}

// checkStatus fails on a response a benchmark must not time: a server
// error means the function did not do its work.
func checkStatus(resp *abi.Response) error {
	if resp.Status >= 500 {
		return fmt.Errorf("status %d: %s: %w", resp.Status, firstLine(resp.Body), errdefs.ErrGuest)
	}
	return nil
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return string(line[:min(len(line), 200)])
}

// engineContestant is a function on a WebAssembly engine.
type engineContestant struct {
	mod  engine.Module
	cfg  engine.InstanceConfig
	req  *abi.Request
	inst engine.Instance
}

// newEngineContestant compiles fn, boots its warm instance and serves the
// first request, whose response it returns with the compilation's time.
func newEngineContestant(ctx context.Context, e engine.Engine, fn EngineFunction, cfg engine.InstanceConfig) (contestant, *abi.Response, float64, error) {
	t0 := time.Now()
	mod, err := e.Compile(ctx, fn.Wasm)
	if err != nil {
		return nil, nil, 0, err
	}
	compile := ms(time.Since(t0))
	c := &engineContestant{mod: mod, cfg: cfg, req: &fn.Request}
	inst, _, err := mod.Boot(ctx, cfg)
	if err != nil {
		_ = mod.Close(ctx)
		return nil, nil, 0, err
	}
	c.inst = inst
	resp, err := inst.Invoke(ctx, c.req)
	if err == nil {
		err = checkStatus(resp)
	}
	if err != nil {
		c.close(ctx)
		return nil, nil, 0, err
	}
	return c, resp, compile, nil
}

func (c *engineContestant) warm(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	_, err := c.inst.Invoke(ctx, c.req)
	return time.Since(t0), err
}

func (c *engineContestant) cold(ctx context.Context) (coldSample, error) {
	t0 := time.Now()
	inst, bs, err := c.mod.Boot(ctx, c.cfg)
	if err != nil {
		return coldSample{}, err
	}
	defer inst.Close(ctx)
	t1 := time.Now()
	_, err = inst.Invoke(ctx, c.req)
	t2 := time.Now()
	return coldSample{total: t2.Sub(t0), boot: t1.Sub(t0), instantiate: bs.Instantiate, init: bs.Init, first: t2.Sub(t1)}, err
}

func (c *engineContestant) close(ctx context.Context) {
	if c.inst != nil {
		c.inst.Close(ctx)
	}
	_ = c.mod.Close(ctx)
}

// nativeContestant is a function's native harness.
type nativeContestant struct {
	bin           string
	req           *abi.Request
	timeout, init time.Duration
	proc          *nativeProcess
}

// newNativeContestant starts fn's warm harness process and serves the
// first request, whose response it returns.
func newNativeContestant(fn EngineFunction, timeout, initTimeout time.Duration) (contestant, *abi.Response, error) {
	c := &nativeContestant{bin: fn.Native, req: &fn.Request, timeout: timeout, init: initTimeout}
	proc, err := startNative(c.bin, initTimeout+timeout)
	if err != nil {
		return nil, nil, err
	}
	c.proc = proc
	resp, _, _, err := proc.invoke(c.req)
	if err == nil {
		err = checkStatus(resp)
	}
	if err != nil {
		proc.close()
		return nil, nil, err
	}
	proc.timeout = timeout
	return c, resp, nil
}

// warm is the call as an engine makes it minus the pipe's transit, which
// an engine in the worker's process does not pay: this side's encoding
// and decoding plus the harness's serving (the SDK's decoding, the
// handler, the SDK's encoding).
func (c *nativeContestant) warm(context.Context) (time.Duration, error) {
	_, serve, codec, err := c.proc.invoke(c.req)
	return serve + codec, err
}

// cold times a new process from its start to the first response: the
// process's start, the Go runtime's, the package's init and the first
// request. The boot is all of it but the first request's serving.
func (c *nativeContestant) cold(context.Context) (coldSample, error) {
	t0 := time.Now()
	proc, err := startNative(c.bin, c.init+c.timeout)
	if err != nil {
		return coldSample{}, err
	}
	defer proc.close()
	_, serve, codec, err := proc.invoke(c.req)
	total := time.Since(t0)
	first := serve + codec
	return coldSample{total: total, boot: total - first, first: first}, err
}

func (c *nativeContestant) close(context.Context) { c.proc.close() }

// engineRatios divides medians between the engines of one function: each
// pair of thaw's WebAssembly engines (the less preferred over the more, in
// engine.Names order: "wazero/wasmtime"), and each of them over the two
// references, the bare wasmtime embedding and the native floor.
func engineRatios(res []EngineResult) map[string]float64 {
	byName := map[string]EngineResult{}
	var wasm []string
	for _, r := range res {
		if r.Skipped != "" {
			continue
		}
		byName[r.Engine] = r
		if r.Engine != Native && r.Engine != Bare {
			wasm = append(wasm, r.Engine)
		}
	}
	rank := func(n string) int {
		if i := slices.Index(engine.Names(), n); i >= 0 {
			return i
		}
		return len(engine.Names())
	}
	slices.SortStableFunc(wasm, func(a, b string) int { return rank(a) - rank(b) })
	out := map[string]float64{}
	put := func(a, b EngineResult) {
		if b.WarmP50us > 0 {
			out[a.Engine+"/"+b.Engine+" warm"] = a.WarmP50us / b.WarmP50us
		}
		if b.ColdP50ms > 0 {
			out[a.Engine+"/"+b.Engine+" cold"] = a.ColdP50ms / b.ColdP50ms
		}
	}
	for i, b := range wasm {
		for _, a := range wasm[i+1:] {
			put(byName[a], byName[b])
		}
	}
	for _, ref := range []string{Bare, Native} {
		if r, ok := byName[ref]; ok {
			for _, a := range wasm {
				put(byName[a], r)
			}
		}
	}
	return out
}

// WriteTable prints the report for people: a row per function and engine
// with each engine's warm and cold p50 over the native floor's, then the
// ratios between engines.
func (r *EngineReport) WriteTable(out io.Writer) {
	writeRows(out, r.Results)
	fmt.Fprintln(out)
	for _, fn := range functionNames(r.Results) {
		rs := r.Ratios[fn]
		var line []string
		for _, k := range slices.Sorted(maps.Keys(rs)) {
			line = append(line, fmt.Sprintf("%s %.2fx", k, rs[k]))
		}
		if len(line) > 0 {
			fmt.Fprintf(out, "%s: %s\n", fn, strings.Join(line, ", "))
		}
	}
	for _, x := range r.Results {
		if x.Skipped != "" {
			fmt.Fprintf(out, "%s has no %s row: %s\n", x.Function, x.Engine, x.Skipped)
		}
	}
}

// writeRows prints one table row per result; a function's native floor,
// when measured, gives the "x native" columns.
func writeRows(out io.Writer, res []EngineResult) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "function\tengine\ttrials\twarm p50 µs\twarm p99 µs\tcold p50 ms\tcold p99 ms\tboot ms\tfirst ms\twarm x native\tcold x native\t")
	native := map[string]EngineResult{}
	for _, x := range res {
		if x.Engine == Native && x.Skipped == "" {
			native[x.Function] = x
		}
	}
	for _, x := range res {
		if x.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", x.Function, x.Engine)
			continue
		}
		wx, cx := "-", "-"
		if n, ok := native[x.Function]; ok {
			wx, cx = fmt.Sprintf("%.2fx", x.WarmP50us/n.WarmP50us), fmt.Sprintf("%.2fx", x.ColdP50ms/n.ColdP50ms)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n", x.Function, x.Engine, x.Trials,
			x.WarmP50us, x.WarmP99us, x.ColdP50ms, x.ColdP99ms, x.BootP50ms, x.FirstP50ms, wx, cx)
	}
	tw.Flush()
}

// functionNames lists the results' functions in order, once each.
func functionNames(res []EngineResult) []string {
	var out []string
	for _, x := range res {
		if !slices.Contains(out, x.Function) {
			out = append(out, x.Function)
		}
	}
	return out
}

// WriteJSON prints the report as one JSON object.
func (r *EngineReport) WriteJSON(out io.Writer) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
