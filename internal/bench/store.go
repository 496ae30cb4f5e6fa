package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/stats"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/s3"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/storesnap"
)

// Settings of the store benchmark: where a restore reads the snapshot from.
const (
	// SettingLocal: the snapshot directory on local disk (page cache
	// dropped), the restore path without the store.
	SettingLocal = "local"
	// SettingWarmCache: the store, with every chunk in the worker's local
	// disk cache (its files dropped from the page cache).
	SettingWarmCache = "warm-cache"
	// SettingRemote: the store with every local cache emptied, so every
	// chunk comes from the remote (S3).
	SettingRemote = "remote"
)

// StoreOptions configure RunStore.
type StoreOptions struct {
	// Function is measured in every mode and setting.
	Function Function
	Modes    []restore.Mode
	Trials   int
	// Dir is a scratch directory on the disk being measured.
	Dir string
	// S3 is the remote (bucket and prefix included).
	S3 s3.Config
	// Secret is the store's master secret.
	Secret []byte
	// Dedup functions are put as snapshots of one tenant to measure how
	// much they share (the SDK and Go runtime); none skips it.
	Dedup []Function
	// Progress, if set, receives one line per measurement.
	Progress io.Writer
	// Engine runs the guests ("": engine.Default()).
	Engine string
}

// StoreResult is one mode and setting over all trials.
type StoreResult struct {
	Function string  `json:"function"`
	Mode     string  `json:"mode"`
	Setting  string  `json:"setting"`
	Trials   int     `json:"trials"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	// OpenP50ms is opening the store snapshot (manifest, meta.json,
	// ws.json), not part of P50ms: a worker opens it once, at deploy or
	// on its first restore, and keeps it.
	OpenP50ms float64 `json:"open_p50_ms,omitempty"`
	// PrefetchP50ms is the working-set fetch and install (reap, bulk).
	PrefetchP50ms float64 `json:"prefetch_p50_ms"`
	// BytesFetched and ChunksFetched (medians per trial) count chunk
	// plaintext fetched from the store's backend (disk cache or remote)
	// by the worker and by the pager child; 0 for local.
	BytesFetched  int64 `json:"bytes_fetched"`
	ChunksFetched int64 `json:"chunks_fetched"`
	Faults        int64 `json:"faults"`
}

// DedupResult is the store's view of the dedup tenant.
type DedupResult struct {
	Functions []string `json:"functions"`
	// LogicalBytes is the total size of all published files; ZeroBytes
	// of them are zero chunks (never stored); ReferencedBytes is the
	// non-zero rest; StoredBytes what the chunk objects take.
	LogicalBytes    int64   `json:"logical_bytes"`
	ZeroBytes       int64   `json:"zero_bytes"`
	ReferencedBytes int64   `json:"referenced_bytes"`
	StoredBytes     int64   `json:"stored_bytes"`
	Chunks          int     `json:"chunks"`
	DedupRatio      float64 `json:"dedup_ratio"`
	// LogicalPerStored is LogicalBytes / StoredBytes (zero chunks count
	// as saved).
	LogicalPerStored float64 `json:"logical_per_stored"`
}

// StoreReport is the output of RunStore.
type StoreReport struct {
	Machine   Machine `json:"machine"`
	Trials    int     `json:"trials"`
	ChunkSize int     `json:"chunk_size"`
	// WSChunkSize is the chunk size of the published working set.
	WSChunkSize int           `json:"ws_chunk_size"`
	WSBytes     int64         `json:"ws_bytes"`
	Results     []StoreResult `json:"results"`
	// Ratios by mode: "warm-cache/local" and "remote/local" of p50.
	Ratios map[string]map[string]float64 `json:"ratios"`
	Dedup  *DedupResult                  `json:"dedup,omitempty"`
}

// prepared is a function booted once and snapshotted, with its working
// set recorded, ready to restore.
type prepared struct {
	fn   Function
	mod  engine.Module
	snap *snapshot.Snapshot
	cfg  engine.InstanceConfig
}

func instanceConfig(fn Function) engine.InstanceConfig {
	mib := fn.MemoryMiB
	if mib == 0 {
		mib = 256
	}
	return engine.InstanceConfig{MemoryLimit: uint64(mib) << 20, Timeout: time.Minute, InitTimeout: 5 * time.Minute}
}

// snapshotFunction boots fn, takes its deploy snapshot as the worker's
// deploy does (engine.Instance.CaptureDeploy: thaw_before_snapshot, then
// the capture), writes it under dir, and records its working set with one
// lazy restore and fn's request, as the worker does.
func snapshotFunction(ctx context.Context, e engine.Engine, p *pager.Pager, fn Function, dir string, record bool) (*prepared, error) {
	mod, err := e.Compile(ctx, fn.Wasm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn.Name, err)
	}
	cfg := instanceConfig(fn)
	inst, _, err := mod.Boot(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: boot: %w", fn.Name, err)
	}
	st, mem, err := engine.CaptureDeploy(ctx, inst)
	if err != nil {
		inst.Close(ctx)
		return nil, fmt.Errorf("%s: %w", fn.Name, err)
	}
	snap, err := snapshot.Write(filepath.Join(dir, fn.Name), snapshot.Meta{ID: fn.Name, Function: fn.Name, Created: time.Now().UTC(), State: *st}, mem)
	inst.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn.Name, err)
	}
	if err := mod.PrepareRestore(ctx, st.Pages); err != nil {
		return nil, err
	}
	pr := &prepared{fn: fn, mod: mod, snap: snap, cfg: cfg}
	if !record {
		return pr, nil
	}
	m, err := (&restore.Restorer{Pager: p}).Prepare(ctx, restore.Lazy, restore.Files(snap), cfg.MemoryLimit, true)
	if err != nil {
		return nil, err
	}
	ri, err := mod.Restore(ctx, cfg, &snap.Meta.State, m.Region)
	if err != nil {
		return nil, err
	}
	_, err = ri.Invoke(ctx, cloneReq(&fn.Request))
	trace, terr := m.Trace()
	ri.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: record working set: %w", fn.Name, err)
	}
	if terr != nil {
		return nil, terr
	}
	if _, err := snap.WriteWorkingSet(trace); err != nil {
		return nil, err
	}
	return pr, nil
}

// trial is one timed restore and request.
type trial struct {
	d, open, prefetch time.Duration
	bytes, chunks     int64
	faults            int64
}

// RunStore measures first-response latency of opts.Function in every mode
// from a local snapshot directory, from the store with a warm disk cache,
// and from the store's remote alone, then (optionally) the dedup of
// several functions' snapshots in one tenant.
func RunStore(ctx context.Context, opts StoreOptions) (*StoreReport, error) {
	if opts.Trials < 1 {
		return nil, fmt.Errorf("trials must be at least 1")
	}
	e, err := engine.Open(ctx, opts.Engine, engine.Config{CacheDir: filepath.Join(opts.Dir, "compile")})
	if err != nil {
		return nil, err
	}
	defer e.Close(ctx)
	p, err := pager.Start(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { p.Close() }()
	pr, err := snapshotFunction(ctx, e, p, opts.Function, filepath.Join(opts.Dir, "local"), true)
	if err != nil {
		return nil, err
	}
	ws, err := pr.snap.WorkingSet()
	if err != nil {
		return nil, err
	}
	rep := &StoreReport{Machine: ThisMachine(), Trials: opts.Trials, ChunkSize: store.DefaultChunkSize, WSChunkSize: storesnap.WSChunkSize, WSBytes: ws.Bytes(), Ratios: map[string]map[string]float64{}}

	warmCache := filepath.Join(opts.Dir, "warm-cache")
	cfg := stack.Config{Tenant: "bench", Secret: opts.Secret, S3: &opts.S3, CacheDir: warmCache}
	h, err := stack.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	id := storesnap.ID(opts.Function.Name, "bench")
	// Put fills the disk cache on the way: that is the warm cache.
	if _, err := storesnap.Publish(ctx, h.Store, id, pr.snap); err != nil {
		h.Close()
		return nil, err
	}
	if err := h.Tiered.Flush(ctx); err != nil {
		h.Close()
		return nil, err
	}
	h.Close()

	progress := func(r StoreResult) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "%-16s %-6s %-10s p50 %8.2f ms  p99 %8.2f ms  fetched %6.1f MiB in %4d chunks  faults %d\n",
				r.Function, r.Mode, r.Setting, r.P50ms, r.P99ms, float64(r.BytesFetched)/(1<<20), r.ChunksFetched, r.Faults)
		}
	}
	for _, mode := range opts.Modes {
		byS := map[string]float64{}
		for _, setting := range []string{SettingLocal, SettingWarmCache, SettingRemote} {
			var trials []trial
			for i := 0; i < opts.Trials; i++ {
				var t trial
				var err error
				if setting == SettingLocal {
					t, err = localTrial(ctx, p, pr, mode)
				} else {
					t, err = storeTrial(ctx, opts, pr, cfg, id, mode, setting)
				}
				if err != nil {
					return nil, fmt.Errorf("%s/%s/%s trial %d: %w", opts.Function.Name, mode, setting, i, err)
				}
				trials = append(trials, t)
			}
			r := summarise(opts.Function.Name, mode, setting, trials)
			rep.Results = append(rep.Results, r)
			byS[setting] = r.P50ms
			progress(r)
		}
		rep.Ratios[string(mode)] = map[string]float64{
			"warm-cache/local": byS[SettingWarmCache] / byS[SettingLocal],
			"remote/local":     byS[SettingRemote] / byS[SettingLocal],
		}
	}
	if len(opts.Dedup) > 0 {
		d, err := runDedup(ctx, e, p, opts)
		if err != nil {
			return nil, err
		}
		rep.Dedup = d
	}
	return rep, nil
}

func summarise(fn string, mode restore.Mode, setting string, ts []trial) StoreResult {
	var lat, open, pre []float64
	var bytes, chunks, faults []int64
	for _, t := range ts {
		lat = append(lat, ms(t.d))
		open = append(open, ms(t.open))
		pre = append(pre, ms(t.prefetch))
		bytes = append(bytes, t.bytes)
		chunks = append(chunks, t.chunks)
		faults = append(faults, t.faults)
	}
	return StoreResult{Function: fn, Mode: string(mode), Setting: setting, Trials: len(ts),
		P50ms: stats.Percentile(lat, 50), P99ms: stats.Percentile(lat, 99), OpenP50ms: stats.Percentile(open, 50), PrefetchP50ms: stats.Percentile(pre, 50),
		BytesFetched: stats.Percentile(bytes, 50), ChunksFetched: stats.Percentile(chunks, 50), Faults: stats.Percentile(faults, 50)}
}

// localTrial restores from the snapshot directory with its files dropped
// from the page cache.
func localTrial(ctx context.Context, p *pager.Pager, pr *prepared, mode restore.Mode) (trial, error) {
	if err := pr.snap.DropCache(); err != nil {
		return trial{}, err
	}
	r := &restore.Restorer{Pager: p}
	t0 := time.Now()
	m, err := r.Prepare(ctx, mode, restore.Files(pr.snap), pr.cfg.MemoryLimit, false)
	if err != nil {
		return trial{}, err
	}
	return finish(ctx, pr, m, t0, &pr.snap.Meta.State)
}

// finish instantiates over m, sends the request and stops the clock.
func finish(ctx context.Context, pr *prepared, m *restore.Memory, t0 time.Time, st *engine.State) (trial, error) {
	inst, err := pr.mod.Restore(ctx, pr.cfg, st, m.Region)
	if err != nil {
		return trial{}, err
	}
	defer inst.Close(ctx)
	if _, err := inst.Invoke(ctx, cloneReq(&pr.fn.Request)); err != nil {
		return trial{}, err
	}
	t := trial{d: time.Since(t0)}
	rs := m.Stats()
	t.prefetch, t.faults = rs.Prefetch, rs.Faults
	return t, nil
}

// storeTrial restores from the store. Before the clock starts: a fresh
// store handle (no decrypted chunks in memory), a fresh pager process
// (none in its memory either), the snapshot opened (timed separately),
// and the caches of the setting prepared: for warm-cache the disk cache's
// files are dropped from the page cache; for remote every cache is empty.
func storeTrial(ctx context.Context, opts StoreOptions, pr *prepared, cfg stack.Config, id string, mode restore.Mode, setting string) (trial, error) {
	scratch, err := os.MkdirTemp(opts.Dir, "trial-")
	if err != nil {
		return trial{}, err
	}
	defer os.RemoveAll(scratch)
	if setting == SettingRemote {
		cfg.CacheDir = filepath.Join(scratch, "cache")
	} else {
		dropTree(cfg.CacheDir)
	}
	h, err := stack.Open(ctx, cfg)
	if err != nil {
		return trial{}, err
	}
	defer h.Close()
	p, err := pager.Start(ctx)
	if err != nil {
		return trial{}, err
	}
	defer p.Close()
	t0 := time.Now()
	sn, err := storesnap.OpenSnapshot(ctx, h.Store, id)
	if err != nil {
		return trial{}, err
	}
	open := time.Since(t0)
	before := h.Store.Counters()
	r := &restore.Restorer{Pager: p}
	src := (&restore.Store{Config: cfg, CacheDir: filepath.Join(scratch, "images")}).Snapshot(sn)
	record := mode == restore.Lazy || mode.UsesWorkingSet()
	t1 := time.Now()
	m, err := r.Prepare(ctx, mode, src, pr.cfg.MemoryLimit, record)
	if err != nil {
		return trial{}, err
	}
	// Count what the pager fetched before the instance (and its memory)
	// is closed.
	var childChunks, childBytes int64
	inst, err := pr.mod.Restore(ctx, pr.cfg, &sn.Meta.State, m.Region)
	if err != nil {
		return trial{}, err
	}
	defer inst.Close(ctx)
	if _, err := inst.Invoke(ctx, cloneReq(&pr.fn.Request)); err != nil {
		return trial{}, err
	}
	t := trial{d: time.Since(t1), open: open}
	rs := m.Stats()
	t.prefetch, t.faults = rs.Prefetch, rs.Faults
	if record {
		pages, err := m.Trace()
		if err != nil {
			return trial{}, err
		}
		childChunks, childBytes = chunksOf(sn, pages)
	}
	after := h.Store.Counters()
	t.chunks = after.Fetched - before.Fetched + childChunks
	t.bytes = after.FetchedBytes - before.FetchedBytes + childBytes
	return t, nil
}

// chunksOf counts the distinct non-zero chunks of memory.img holding
// pages: what the pager fetched to serve those faults.
func chunksOf(sn *storesnap.Snapshot, pages []int) (n, bytes int64) {
	m := sn.Snap.Manifest()
	var e *store.FileEntry
	for i := range m.Files {
		if m.Files[i].Name == snapshot.ImageFile {
			e = &m.Files[i]
		}
	}
	if e == nil {
		return 0, 0
	}
	seen := map[int64]bool{}
	for _, pg := range pages {
		i := int64(pg) * snapshot.PageSize / int64(e.ChunkSize)
		if i >= int64(len(e.Chunks)) || e.Chunks[i].Zero || seen[i] {
			continue
		}
		seen[i] = true
		n++
		bytes += int64(e.Chunks[i].Size)
	}
	return n, bytes
}

// dropTree evicts every file under dir from the page cache.
func dropTree(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			_ = snapshot.DropFileCache(path)
		}
		return nil
	})
}

// runDedup snapshots every dedup function (after init, as deploy does) and
// puts them into one fresh tenant, then reads the store's stats.
func runDedup(ctx context.Context, e engine.Engine, p *pager.Pager, opts StoreOptions) (*DedupResult, error) {
	cfg := stack.Config{Tenant: fmt.Sprintf("dedup-%d", time.Now().UnixNano()), Secret: opts.Secret, S3: &opts.S3,
		QueueDir: filepath.Join(opts.Dir, "dedup-queue")}
	h, err := stack.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	d := &DedupResult{}
	for _, fn := range opts.Dedup {
		pr, err := snapshotFunction(ctx, e, p, fn, filepath.Join(opts.Dir, "dedup"), false)
		if err != nil {
			return nil, err
		}
		res, err := storesnap.Publish(ctx, h.Store, storesnap.ID(fn.Name, "dedup"), pr.snap)
		_ = pr.mod.Close(ctx)
		if err != nil {
			return nil, err
		}
		d.Functions = append(d.Functions, fn.Name)
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "dedup: put %-14s %4d chunks (%d zero), %4d new, %4d reused\n", fn.Name, res.Chunks, res.ZeroChunks, res.NewChunks, res.ReusedChunks)
		}
	}
	st, err := h.Store.Stats(ctx)
	if err != nil {
		return nil, err
	}
	d.LogicalBytes, d.ZeroBytes, d.ReferencedBytes, d.StoredBytes = st.LogicalBytes, st.ZeroBytes, st.ReferencedBytes, st.StoredBytes
	d.Chunks, d.DedupRatio = st.Chunks, st.DedupRatio
	if st.StoredBytes > 0 {
		d.LogicalPerStored = float64(st.LogicalBytes) / float64(st.StoredBytes)
	}
	// Leave the bucket as we found it.
	ids, _ := h.Store.Snapshots(ctx)
	for _, id := range ids {
		_ = h.Store.Delete(ctx, id)
	}
	_, _ = h.Store.GC(ctx)
	return d, nil
}

// WriteTable prints the report for people.
func (r *StoreReport) WriteTable(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "function\tmode\tsetting\ttrials\tp50 ms\tp99 ms\tprefetch ms\topen ms\tfetched MiB\tchunks\tfaults\t")
	for _, x := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\t%d\t%d\t\n", x.Function, x.Mode, x.Setting, x.Trials,
			x.P50ms, x.P99ms, x.PrefetchP50ms, x.OpenP50ms, float64(x.BytesFetched)/(1<<20), x.ChunksFetched, x.Faults)
	}
	tw.Flush()
	fmt.Fprintf(out, "\nworking set %.1f MiB, chunk size %d KiB (working set: %d KiB)\n", float64(r.WSBytes)/(1<<20), r.ChunkSize>>10, r.WSChunkSize>>10)
	modes := make([]string, 0, len(r.Ratios))
	for m := range r.Ratios {
		modes = append(modes, m)
	}
	sort.Strings(modes)
	for _, m := range modes {
		fmt.Fprintf(out, "  %-6s warm-cache/local %5.2fx  remote/local %5.2fx\n", m, r.Ratios[m]["warm-cache/local"], r.Ratios[m]["remote/local"])
	}
	if d := r.Dedup; d != nil {
		fmt.Fprintf(out, "\ndedup over %d functions %v:\n  logical %.1f MiB (zero %.1f MiB, non-zero %.1f MiB), stored %.1f MiB in %d chunks\n  dedup ratio (non-zero/stored) %.2f, logical/stored %.2f\n",
			len(d.Functions), d.Functions, float64(d.LogicalBytes)/(1<<20), float64(d.ZeroBytes)/(1<<20), float64(d.ReferencedBytes)/(1<<20),
			float64(d.StoredBytes)/(1<<20), d.Chunks, d.DedupRatio, d.LogicalPerStored)
	}
}

// WriteJSON prints the report as one JSON object.
func (r *StoreReport) WriteJSON(out io.Writer) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
