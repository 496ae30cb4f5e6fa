// Package stats holds the summary statistics thaw reports about samples
// (latencies, fault counts, sizes), defined once so that every report,
// benchmark and simulation means the same thing by "p99" or "median".
package stats

import (
	"cmp"
	"math"
	"slices"
)

// Percentile returns the p-th percentile (0..100) of xs by the nearest-rank
// method: the smallest sample with at least p% of the samples at or below
// it, always an observed value, never an interpolation. p <= 0 gives the
// minimum, p >= 100 the maximum, and no samples the zero value. The median
// is Percentile(xs, 50): for an even count, the lower of the two middle
// samples. xs is not modified.
func Percentile[T cmp.Ordered](xs []T, p float64) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return PercentileSorted(s, p)
}

// PercentileSorted is Percentile for samples already sorted in ascending
// order, for callers that take several percentiles of one set.
func PercentileSorted[T cmp.Ordered](sorted []T, p float64) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	// p*n before the division: for a whole p the product is exact, so a
	// rank that is a whole number (p7 of 100 samples) is not pushed up by
	// rounding as p/100*n would be (0.07*100 = 7.000000000000001).
	rank := int(math.Ceil(p * float64(len(sorted)) / 100))
	return sorted[min(max(rank, 1), len(sorted))-1]
}
