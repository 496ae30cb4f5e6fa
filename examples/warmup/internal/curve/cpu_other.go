//go:build !linux

package curve

import "time"

// threadCPU reports that thread CPU time is unavailable: Measure falls
// back to wall time.
func threadCPU() time.Duration { return -1 }
