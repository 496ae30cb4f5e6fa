//go:build !race

package pager

// raceEnabled: this test binary runs under the race detector.
const raceEnabled = false
