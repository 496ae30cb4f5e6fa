// Package bench measures thaw: restore modes against each other and against
// a cold boot, always as ratios within one run on one machine, over repeated
// trials, reporting medians and p99.
package bench

import (
	"time"
)

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
