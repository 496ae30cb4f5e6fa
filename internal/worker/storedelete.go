package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/storesnap"
)

// storeDeletesDir, under the data directory, holds the store snapshots
// waiting to be deleted: one empty file per store snapshot id. It survives
// restarts, so a deletion the remote could not take is not forgotten.
const storeDeletesDir = "store-deletes"

// deleteRetry is how often pending deletions are retried while the remote
// is down.
const deleteRetry = 5 * time.Second

// Deleting store snapshots.
//
// Whenever the worker drops a local snapshot (a redeploy replaces the
// function, the policy prunes its pool, thaw rm), it also drops the stored
// copy: the materialised mmap image is removed at once, and the manifest's
// deletion is queued in DATA/store-deletes and carried out by a background
// loop, never on the caller's path. A deletion the remote cannot take
// (it is down) stays queued and is retried every deleteRetry and at the
// next start; it never fails the user's operation. Once a manifest is gone,
// `thaw store gc` frees the chunks no other snapshot references.
//
// Deletions and publishes are ordered by pubMu: a publish of a dropped
// snapshot that has not started yet is skipped, and one that is running
// finishes before the deletion runs. A deletion first drains the tiered
// upload queue, so a queued write of the manifest cannot reach the remote
// after the deletion.

// drop forgets the stored copies of snapshots ids of function name and
// queues the deletion of their manifests. Callers call it before they
// remove the local directories, so that a publish failing on the vanishing
// files is recognised as dropped rather than failed.
func (s *workerStore) drop(name string, ids []string) {
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		sid := storesnap.ID(name, id)
		if err := store.ValidSnapshotID(sid); err != nil {
			continue // not a snapshot of ours (a stray directory entry)
		}
		s.mu.Lock()
		s.dropped[sid] = true
		delete(s.opened, sid)
		for snap := range s.storeOnly {
			if snap.Dir == filepath.Join(s.snapDir(name), id) {
				delete(s.storeOnly, snap)
			}
		}
		s.mu.Unlock()
		// An mmap restore still running keeps its mapping of the unlinked
		// file.
		if err := os.Remove(filepath.Join(s.chunks.CacheDir, sid+".img")); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("removing materialised store image failed", "snapshot", sid, "err", err)
		}
		if err := os.WriteFile(filepath.Join(s.deletesDir, sid), nil, 0o600); err != nil {
			// Not fatal, but the manifest stays in the store and keeps
			// its chunks from GC; say so.
			s.log.Warn("queueing store snapshot deletion failed; the stored copy is kept", "snapshot", sid, "err", err)
			s.deletes.WithLabelValues("failed").Inc()
		}
	}
	select {
	case s.delWake <- struct{}{}:
	default:
	}
}

// deleter carries out queued deletions when woken and every deleteRetry
// while any are pending.
func (s *workerStore) deleter(ctx context.Context) {
	defer close(s.delDone)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.delStop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(deleteRetry)
	defer t.Stop()
	for {
		select {
		case <-s.delStop:
			return
		case <-s.delWake:
		case <-t.C:
		}
		if n, err := s.runDeletes(ctx); err != nil {
			s.log.Debug("store deletions pending", "pending", n, "err", err)
		}
	}
}

// pendingDeletes lists the queued deletions.
func (s *workerStore) pendingDeletes() ([]string, error) {
	ents, err := os.ReadDir(s.deletesDir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// runDeletes deletes every queued store snapshot it can. It returns how
// many remain and, if any do, why.
func (s *workerStore) runDeletes(ctx context.Context) (int, error) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	ids, err := s.pendingDeletes()
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	if err := s.h.Tiered.Flush(ctx); err != nil {
		return len(ids), fmt.Errorf("draining the upload queue first: %w", err)
	}
	left, kept := len(ids), 0
	for _, sid := range ids {
		// A live cluster record may still reference the snapshot (a peer
		// restores from it, or this worker's own redeploy has not reached
		// the registry yet): keep it queued and ask again next round, so
		// the veto delays the deletion rather than leaking the copy.
		if i := strings.LastIndexByte(sid, '.'); s.keep != nil && i > 0 && s.keep(sid[:i], sid[i+1:]) {
			kept++
			continue
		}
		err := s.h.Store.Delete(ctx, sid)
		switch {
		case err == nil, errors.Is(err, errdefs.ErrNotFound), errors.Is(err, errdefs.ErrInvalid):
			if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				s.log.Warn("dropping an invalid queued store deletion", "snapshot", sid, "err", err)
			}
			_ = os.Remove(filepath.Join(s.deletesDir, sid))
			s.mu.Lock()
			if s.pending[sid] > 0 {
				s.dropped[sid] = false // publishDone forgets it
			} else {
				delete(s.dropped, sid)
			}
			s.mu.Unlock()
			s.deletes.WithLabelValues("ok").Inc()
			left--
			s.log.Debug("deleted store snapshot", "snapshot", sid)
		default:
			// Unreachable or refused: keep it queued and retry later.
			return left, fmt.Errorf("deleting store snapshot %s: %w", sid, err)
		}
	}
	if kept > 0 {
		return left, fmt.Errorf("%d stored snapshots kept while a live cluster record references them", kept)
	}
	return 0, nil
}

// publishDone forgets a dropped store id once its deletion is done and no
// publish of it is scheduled any more. Its local directory is removed
// right after it is dropped, so nothing schedules a publish of it again.
func (s *workerStore) publishDone(sid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[sid]--; s.pending[sid] > 0 {
		return
	}
	delete(s.pending, sid)
	if queued, ok := s.dropped[sid]; ok && !queued {
		delete(s.dropped, sid)
	}
}

// SyncStore waits for the scheduled publishes, uploads the writes queued
// for the remote and carries out the queued store deletions, now. It
// returns an error, and leaves the rest queued, when the remote cannot take
// them yet (it is down); a no-op without a store. Tests and operators use
// it before `thaw store gc`.
func (w *Worker) SyncStore(ctx context.Context) error { return w.snapStore.sync(ctx) }

func (s *workerStore) sync(ctx context.Context) error {
	s.pubs.Wait()
	if err := s.h.Tiered.Flush(ctx); err != nil {
		return fmt.Errorf("worker: store uploads pending: %w", err)
	}
	n, err := s.runDeletes(ctx)
	if err != nil {
		return fmt.Errorf("worker: %d store deletions pending: %w", n, err)
	}
	return nil
}
