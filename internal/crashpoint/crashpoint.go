// Package crashpoint is a test hook: named points in the worker's
// durability protocols (deploy, checkpoint, store publication) where the
// process can be made to die as a power cut or `kill -9` would kill it, so
// tests can show that a restart finds a consistent state at every step.
//
// The hook is armed only by the environment variable THAW_CRASHPOINT,
// read once at start: THAW_CRASHPOINT=deploy.module-written makes the
// process SIGKILL itself the first time it reaches that point. Unset (in
// production), Hit is one comparison of a string with "".
package crashpoint

import (
	"os"
	"syscall"
)

// EnvVar names the environment variable that arms a crash point.
const EnvVar = "THAW_CRASHPOINT"

// The crash points, in the order each protocol reaches them.
const (
	// DeploySnapshotWritten: the deploy's snapshot directory is published,
	// the module file and the record are not written yet.
	DeploySnapshotWritten = "deploy.snapshot-written"
	// DeployModuleWritten: the content-addressed module file is in place
	// (and its directory synced), the record still names the old module.
	DeployModuleWritten = "deploy.module-written"
	// DeployRecordWritten: function.json was renamed into place, before
	// its directory is synced.
	DeployRecordWritten = "deploy.record-written"
	// DeployCommitted: the record is durable; the replaced function's
	// snapshots and unreferenced modules are not removed yet.
	DeployCommitted = "deploy.committed"
	// DeployCleaned: old snapshots and modules are removed, before the
	// deploy is answered.
	DeployCleaned = "deploy.cleaned"
	// CheckpointSnapshotWritten: a policy checkpoint's snapshot directory
	// is published, policy.json does not list it yet.
	CheckpointSnapshotWritten = "checkpoint.snapshot-written"
	// CheckpointPolicySaved: policy.json lists the new checkpoint.
	CheckpointPolicySaved = "checkpoint.policy-saved"
	// StorePublishStart: a snapshot's publication to the store begins.
	StorePublishStart = "store.publish-start"
	// StoreChunksWritten: every chunk of a publication is written, its
	// manifest is not.
	StoreChunksWritten = "store.chunks-written"
	// StorePublished: the manifest is written.
	StorePublished = "store.published"
)

// All lists every crash point.
var All = []string{
	DeploySnapshotWritten, DeployModuleWritten, DeployRecordWritten, DeployCommitted, DeployCleaned,
	CheckpointSnapshotWritten, CheckpointPolicySaved,
	StorePublishStart, StoreChunksWritten, StorePublished,
}

// armed is the crash point named by EnvVar ("" when unset).
var armed = os.Getenv(EnvVar)

// Hit kills the process with SIGKILL if name is the armed crash point.
func Hit(name string) {
	if armed == "" || armed != name {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught; never continue past the point
}
