package coord

import (
	"github.com/prometheus/client_golang/prometheus"
)

// placementMetrics count what placement did with the invocations a worker
// (or gateway) received, by policy: thaw_placements_total{policy, outcome}
// with outcome local (served here), forwarded (to a peer; retries count
// again), held (waited for room at least once), rejected (429 after the
// hold bound) and retried (placed again after a failed forward).
type placementMetrics struct {
	local, forwarded, held, rejected, retried prometheus.Counter
}

// newPlacementMetrics registers the counters on reg (nil: counted, not
// served).
func newPlacementMetrics(reg prometheus.Registerer, policy string) placementMetrics {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thaw_placements_total",
		Help: "Invocations this worker received, by placement policy and what placement did: local, forwarded, held, rejected, retried.",
	}, []string{"policy", "outcome"})
	if reg != nil {
		reg.MustRegister(v)
	}
	return placementMetrics{local: v.WithLabelValues(policy, "local"), forwarded: v.WithLabelValues(policy, "forwarded"),
		held: v.WithLabelValues(policy, "held"), rejected: v.WithLabelValues(policy, "rejected"), retried: v.WithLabelValues(policy, "retried")}
}
