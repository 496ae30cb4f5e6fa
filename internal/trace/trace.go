// Package trace reads the Azure Functions 2019 trace format, turns its
// per-minute invocation counts into arrival times the way vHive's In-Vitro
// loader does, and samples a trace down to what one machine can replay.
//
// The trace has three files, joined on (HashOwner, HashApp, HashFunction):
//
//   - invocations: HashOwner,HashApp,HashFunction,Trigger, then one column per
//     minute whose label is the minute number within the day ("1".."1440", or
//     any contiguous run of them in samples such as In-Vitro's);
//   - durations: Average,Count,Minimum,Maximum,percentile_Average_{0,1,25,50,75,99,100}
//     (milliseconds, one row per function and day);
//   - memory: SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct{1,5,25,50,75,95,99,100}
//     (per application in the original release, per function in In-Vitro samples).
//
// Columns are found by header name, not position, because the published
// files and their derivatives do not agree on column order.
//
// When the real trace is used, attribute it as Attribution says (CC-BY 4.0).
package trace

// Attribution is the citation the CC-BY 4.0 licence of the Azure Functions
// 2019 trace requires wherever the trace or results derived from it are shown.
const Attribution = `Azure Functions Trace 2019, (c) Microsoft, CC-BY 4.0. ` +
	`M. Shahrad et al., "Serverless in the Wild: Characterizing and Optimizing ` +
	`the Serverless Workload at a Large Cloud Provider", USENIX ATC 2020.`

// Key identifies a function across the three trace files.
type Key struct {
	Owner, App, Function string
}

// Function is one trace function: its per-minute invocation counts and,
// when the durations and memory files have a row for it, their statistics.
type Function struct {
	Key
	// Trigger is the Azure trigger type ("http", "timer", "queue", ...).
	Trigger string
	// Counts holds invocations per minute, aligned with Trace.Minutes.
	Counts []int
	// Duration is nil when the durations file has no row for the function.
	Duration *Duration
	// Memory is nil when the memory file has no row for the function.
	Memory *Memory
}

// Total returns the function's invocations over the whole trace.
func (f *Function) Total() int {
	n := 0
	for _, c := range f.Counts {
		n += c
	}
	return n
}

// Duration holds a function's daily execution-time statistics in
// milliseconds. Percentiles are keyed by their percentile (0, 1, 25, 50, 75,
// 99, 100).
type Duration struct {
	AverageMs   float64
	Count       int
	MinimumMs   float64
	MaximumMs   float64
	Percentiles map[int]float64
}

// Memory holds allocated-memory statistics in MiB. Percentiles are keyed by
// their percentile (1, 5, 25, 50, 75, 95, 99, 100).
type Memory struct {
	SampleCount int
	AverageMb   float64
	Percentiles map[int]float64
}

// Trace is a parsed trace.
type Trace struct {
	// Minutes holds the minute labels of the invocation columns, in file order.
	Minutes []int
	// Functions in the invocations file's order.
	Functions []*Function
}

// Lookup returns the function with key k, or nil.
func (t *Trace) Lookup(k Key) *Function {
	for _, f := range t.Functions {
		if f.Key == k {
			return f
		}
	}
	return nil
}

// Total returns the number of invocations in the trace.
func (t *Trace) Total() int {
	n := 0
	for _, f := range t.Functions {
		n += f.Total()
	}
	return n
}

// PerMinute returns the total invocations of all functions per minute.
func (t *Trace) PerMinute() []int {
	out := make([]int, len(t.Minutes))
	for _, f := range t.Functions {
		for i, c := range f.Counts {
			out[i] += c
		}
	}
	return out
}
