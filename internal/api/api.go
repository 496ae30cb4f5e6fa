// Package api is thaw's HTTP API as its clients see it: the JSON bodies the
// server and its clients exchange (a deploy's Config, a function's
// FunctionInfo, the error body), the headers of an invocation, the
// Server-Timing codec, and the Client that speaks it.
//
// The package depends on nothing in thaw but errdefs, so a client (the
// CLI, the load generator, the benchmarks) links no worker. The server
// maps the worker's own types to these in one place (server/wire.go); the
// worker's registry record persists Config as it is on the wire.
package api

import "time"

// Request headers.
const (
	// HeaderConfig carries a deploy's Config as JSON when the module is
	// the whole request body.
	HeaderConfig = "X-Thaw-Config"
	// HeaderMode starts a fresh instance in the given Mode (or ModeWarm).
	// With a token configured it needs the token, because it lets a
	// caller force expensive starts.
	HeaderMode = "X-Thaw-Mode"
	// HeaderDropCache set to 1 evicts the snapshot from the page cache
	// before the restore (needs the token like HeaderMode).
	HeaderDropCache = "X-Thaw-Drop-Cache"
)

// Response headers.
const (
	// HeaderError names the error category of a response the server
	// produced itself (not the guest), so clients can tell a platform
	// error from a function that chose to answer 404 or 500.
	HeaderError = "X-Thaw-Error"
	// HeaderServerTiming breaks an invocation's latency into stages
	// (FormatServerTiming, ParseServerTiming).
	HeaderServerTiming = "Server-Timing"
	// HeaderStart says how the serving instance started: cold, warm or
	// restore.
	HeaderStart = "X-Thaw-Start"
	// HeaderFallback, when present, says why a restore fell back to a
	// cold boot.
	HeaderFallback = "X-Thaw-Fallback"
	// HeaderNode names the cluster worker (its node id) that served the
	// invocation, also when another worker received it; the
	// Server-Timing metric "node" says the same.
	HeaderNode = "X-Thaw-Node"
)

// Mode names a way to start an instance, as the wire spells it: a deploy's
// restore_mode and the X-Thaw-Mode header. The restore package's Mode has
// the same names (worker's TestModesMatchRestore keeps them equal).
type Mode string

// The modes. ModeCold boots without a snapshot; ModeWarm is not a restore
// but asks X-Thaw-Mode to reuse an idle instance.
const (
	ModeCold  Mode = "cold"
	ModeEager Mode = "eager"
	ModeMmap  Mode = "mmap"
	ModeLazy  Mode = "lazy"
	ModeReap  Mode = "reap"
	ModeBulk  Mode = "bulk"
	ModeWarm  Mode = "warm"
)

// ErrorBody is the JSON body of every error the server produces; the
// HeaderError header names its category.
type ErrorBody struct {
	Error string `json:"error"`
}

// FunctionInfo describes a deployed function: the answer to a deploy and
// to GET /v1/functions/{name}.
type FunctionInfo struct {
	Name string `json:"name"`
	// Config is the configuration as deployed, defaults filled in.
	Config     Config    `json:"config"`
	ModuleSHA  string    `json:"module_sha256"`
	ModuleSize int       `json:"module_size"`
	Deployed   time.Time `json:"deployed"`
	// Snapshot describes the function's memory snapshot, if any.
	Snapshot *SnapshotInfo `json:"snapshot,omitempty"`
	// Idle and Busy count live instances.
	Idle int `json:"idle_instances"`
	Busy int `json:"busy_instances"`
	// PoolSnapshots counts the policy's snapshots beyond the first.
	PoolSnapshots int `json:"pool_snapshots"`
	// Policy is the function's snapshot policy.
	Policy string `json:"policy"`
}

// SnapshotInfo summarises a function's memory snapshot.
type SnapshotInfo struct {
	ID          string `json:"id"`
	MemoryBytes int64  `json:"memory_bytes"`
	DataBytes   int64  `json:"data_bytes"`
	WSBytes     int64  `json:"working_set_bytes,omitempty"`
}

// FunctionList is the body of GET /v1/functions, sorted by name.
type FunctionList struct {
	Functions []FunctionInfo `json:"functions"`
}
