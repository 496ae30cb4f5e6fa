package worker

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/restore"
)

// metrics are the worker's Prometheus collectors.
type metrics struct {
	reg         *prometheus.Registry
	invocations *prometheus.CounterVec
	starts      *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	// discarded counts restored instances whose memory could not be
	// trusted; snapshotsDiscarded snapshots found unusable at load.
	discarded          *prometheus.CounterVec
	snapshotsDiscarded *prometheus.CounterVec
	latency            *prometheus.HistogramVec
	stages             *prometheus.HistogramVec
	faults             *prometheus.CounterVec
	bytesRead          *prometheus.CounterVec
	instances          *prometheus.GaugeVec
	recordings         *prometheus.CounterVec
	checkpoints        *prometheus.CounterVec
	reused             *prometheus.CounterVec
	idle               *prometheus.CounterVec
	idleSeconds        *prometheus.HistogramVec
	// budgetRefusals and budgetEvictions count the memory budget's
	// refusals (503) and the idle instances it closed to make room.
	budgetRefusals  *prometheus.CounterVec
	budgetEvictions *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	buckets := prometheus.ExponentialBuckets(0.0001, 2, 20) // 100µs .. ~52s
	m.invocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_invocations_total", Help: "Invocations by function and outcome (HTTP status class or error category).",
	}, []string{"function", "outcome"})
	m.starts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_instance_starts_total", Help: "Instances started, by how: cold boot or restore mode.",
	}, []string{"function", "mode"})
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_restore_fallbacks_total", Help: "Restores that failed and fell back to a cold boot.",
	}, []string{"function", "mode"})
	m.discarded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_restore_discarded_total", Help: "Restored instances discarded after a call because their memory could not be trusted, by cause (checksum, source_unavailable, pager_lost, verify); each request was served again on a cold boot.",
	}, []string{"function", "mode", "cause"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "thaw_invocation_seconds", Help: "Invocation latency inside the worker, by start kind (warm, cold, restore).", Buckets: buckets,
	}, []string{"function", "start"})
	m.stages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "thaw_start_stage_seconds", Help: "Instance start stages (instantiate, init, map, prefetch) by mode.", Buckets: buckets,
	}, []string{"mode", "stage"})
	m.snapshotsDiscarded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_snapshots_discarded_total", Help: "Snapshots discarded at load because they cannot belong to the function (reason module_mismatch: taken of another module).",
	}, []string{"function", "reason"})
	m.faults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_restore_page_faults_total", Help: "Page faults served lazily during restored instances' first invocation.",
	}, []string{"function", "mode"})
	m.bytesRead = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_restore_bytes_read_total", Help: "Bytes read from snapshot files to start instances.",
	}, []string{"function", "mode"})
	m.instances = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "thaw_instances", Help: "Live instances by function and state (idle, busy).",
	}, []string{"function", "state"})
	m.recordings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_working_set_recordings_total", Help: "Working sets recorded (first restore after a snapshot, or after too many misses).",
	}, []string{"function"})
	m.checkpoints = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_checkpoints_total", Help: "Snapshots of live instances taken by the function's snapshot policy.",
	}, []string{"function"})
	m.reused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_restore_regions_reused_total", Help: "Restores whose memory region came from the region pool (a finished instance of the same function).",
	}, []string{"function", "mode"})
	m.idle = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_idle_calls_total", Help: "Guest idle calls between requests, by outcome (ok, failed: instance closed, skipped: a request was waiting).",
	}, []string{"function", "outcome"})
	m.idleSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "thaw_idle_seconds", Help: "Time guests spent in their idle call, off the requests' path.", Buckets: buckets,
	}, []string{"function"})
	m.budgetRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_memory_budget_refusals_total", Help: "Requests and deploys refused (503) because the worker's memory budget had no room for another instance.",
	}, []string{"function"})
	m.budgetEvictions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_memory_budget_evictions_total", Help: "Idle instances closed before their keep-alive to make room in the worker's memory budget.",
	}, []string{"function"})
	m.reg.MustRegister(m.budgetRefusals, m.budgetEvictions, m.idle, m.idleSeconds, m.reused, m.checkpoints, m.invocations, m.starts, m.fallbacks, m.discarded, m.snapshotsDiscarded, m.latency, m.stages, m.faults, m.bytesRead, m.instances, m.recordings,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchBudget exports the memory budget and what is charged to it.
func (m *metrics) watchBudget(b *memBudget) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "thaw_memory_budget_bytes", Help: "The worker's memory budget: the most its instances' memory caps and pooled regions may sum to.",
		}, func() float64 { return float64(b.total) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "thaw_memory_reserved_bytes", Help: "Memory charged to the budget: live instances' memory caps plus idle pooled regions.",
		}, func() float64 { return float64(b.used()) }))
}

// watchRegions exports the region pool's idle regions and bytes, and the
// spare regions r prepared for it.
func (m *metrics) watchRegions(p *engine.RegionPool, r *restore.Restorer) {
	for _, outcome := range []string{"made", "failed"} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "thaw_spare_regions_total", Help: "Spare regions prepared in the background for bulk restores that found no pooled region, by outcome.",
			ConstLabels: prometheus.Labels{"outcome": outcome},
		}, func() float64 {
			made, failed := r.SpareCounts()
			if outcome == "made" {
				return float64(made)
			}
			return float64(failed)
		}))
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "thaw_region_pool_regions", Help: "Idle memory regions kept for reuse by later restores.",
		}, func() float64 { n, _ := p.Idle(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "thaw_region_pool_bytes", Help: "Bytes the idle regions may hold (their touched extent).",
		}, func() float64 { _, b := p.Idle(); return float64(b) }))
}
