package worker

import (
	"context"
	"fmt"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// snapshotStore is what the worker asks of a snapshot store: a copy of
// every snapshot it writes (publish), the removal of the copies of the
// snapshots it drops (drop), and a way back to a snapshot whose local
// directory is missing or unusable (openStored, restoreAny).
//
// *workerStore is the store of Options.Store (store.go, storedelete.go);
// noStore stands in when none is configured, so that callers never ask
// whether there is one.
type snapshotStore interface {
	// publish copies snap, a snapshot of function name, to the store in
	// the background; it is called again when the snapshot gains a
	// working set.
	publish(name string, snap *snapshot.Snapshot)
	// drop forgets the stored copies of snapshots ids of function name.
	// Callers call it before they remove the local directories.
	drop(name string, ids []string)
	// openStored opens snapshot id of f, whose local directory dir could
	// not be opened (localErr), from the store; without one it fails
	// with localErr.
	openStored(ctx context.Context, f *function, id, dir string, localErr error) (*snapshot.Snapshot, error)
	// restoreAny starts an instance of f from snap in mode, from the
	// local directory or, when that fails, from the store.
	restoreAny(ctx context.Context, f *function, snap *snapshot.Snapshot, mode restore.Mode, dropCache bool, t *Timing) (*instance, error)
	// pull copies snap, a snapshot of f opened from the store
	// (openStored), to its local directory snap.Dir and returns the local
	// snapshot; without a store it fails with errdefs.ErrUnavailable.
	pull(ctx context.Context, f *function, snap *snapshot.Snapshot) (*snapshot.Snapshot, error)
	// adoptWorkingSet gives local, a local snapshot of f without a
	// working set, the one published with the stored snapshot of the same
	// id, and reports whether it has one now; without a store, false.
	// notified says a peer announced that it published one (a background
	// adoption, Worker.AdoptWorkingSet) rather than a restore wanting one.
	adoptWorkingSet(ctx context.Context, f *function, local *snapshot.Snapshot, notified bool) bool
	// waitPublishes waits for the publishes scheduled so far.
	waitPublishes()
	// sync waits for the publishes and carries out the writes and
	// deletions queued for the remote (Worker.SyncStore).
	sync(ctx context.Context) error
	// close lets running publishes finish and closes the store.
	close()
}

var (
	_ snapshotStore = (*workerStore)(nil)
	_ snapshotStore = noStore{}
)

// noStore is the snapshotStore of a worker without a store: snapshots
// live in the data directory only.
type noStore struct{}

func (noStore) publish(string, *snapshot.Snapshot) {}
func (noStore) drop(string, []string)              {}
func (noStore) openStored(_ context.Context, _ *function, _, _ string, localErr error) (*snapshot.Snapshot, error) {
	return nil, localErr
}
func (noStore) restoreAny(ctx context.Context, f *function, snap *snapshot.Snapshot, mode restore.Mode, dropCache bool, t *Timing) (*instance, error) {
	return f.restore(ctx, snap, restore.Files(snap), mode, dropCache, t)
}
func (noStore) pull(context.Context, *function, *snapshot.Snapshot) (*snapshot.Snapshot, error) {
	return nil, fmt.Errorf("pull: no snapshot store: %w", errdefs.ErrUnavailable)
}
func (noStore) adoptWorkingSet(context.Context, *function, *snapshot.Snapshot, bool) bool {
	return false
}
func (noStore) waitPublishes()             {}
func (noStore) sync(context.Context) error { return nil }
func (noStore) close()                     {}
