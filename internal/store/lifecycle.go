package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// origin returns the backend holding the authoritative copies: Verify, GC
// and Stats judge what is really stored, not what a cache happens to hold.
func (s *Store) origin() Backend {
	if o, ok := s.be.(Originer); ok {
		return o.Origin()
	}
	return s.be
}

// snapshotIDs lists the ids of the tenant's snapshots (its manifests) in
// be.
func (s *Store) snapshotIDs(ctx context.Context, be Backend) ([]string, error) {
	prefix := "manifests/" + s.keys.tenant + "/"
	var ids []string
	err := be.List(ctx, prefix, func(fi ObjectInfo) error {
		ids = append(ids, strings.TrimPrefix(fi.Name, prefix))
		return nil
	})
	return ids, err
}

// manifests loads every manifest of the tenant from be. Any manifest that
// cannot be read fails the call: GC must not guess what it references.
func (s *Store) manifests(ctx context.Context, be Backend) ([]*Manifest, error) {
	ids, err := s.snapshotIDs(ctx, be)
	if err != nil {
		return nil, fmt.Errorf("store: listing manifests: %w", err)
	}
	ms := make([]*Manifest, 0, len(ids))
	for _, id := range ids {
		m, err := s.loadManifest(ctx, be, id)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// GCResult says what GC did.
type GCResult struct {
	Manifests int `json:"manifests"`
	// Chunks is the number of chunk objects found; Referenced of them are
	// used by some manifest.
	Chunks     int `json:"chunks"`
	Referenced int `json:"referenced"`
	// Deleted chunks and their object bytes.
	Deleted      int   `json:"deleted"`
	DeletedBytes int64 `json:"deleted_bytes"`
	// Young counts unreferenced chunks kept because they were written
	// within the grace period (a snapshot upload may be about to use them).
	Young int `json:"young"`
}

// GC deletes the tenant's chunks that no manifest references. It is safe
// while other workers upload, by leases rather than locks:
//
//  1. chunks are listed first, then manifests, so a manifest published
//     before the listing of manifests protects its chunks;
//  2. a chunk written less than GCGrace ago is never deleted, and its age
//     is checked again (Stat) just before deleting it;
//  3. Put publishes a manifest within GCGrace/2 of starting, and reuses a
//     stored chunk only if it was written within GCGrace/2, rewriting
//     older ones; so any chunk a manifest-in-progress relies on is young
//     until that manifest is visible.
//
// The remaining window is between GC's last Stat of a chunk and its Delete
// (one round trip): an upload that rewrites exactly that chunk then can
// lose it. Verify detects such a hole; re-putting the snapshot repairs it.
func (s *Store) GC(ctx context.Context) (GCResult, error) {
	var res GCResult
	be := s.origin()
	prefix := "chunks/" + s.keys.tenant + "/"
	var all []ObjectInfo
	if err := be.List(ctx, prefix, func(fi ObjectInfo) error {
		all = append(all, fi)
		return nil
	}); err != nil {
		return res, fmt.Errorf("store: gc: listing chunks: %w", err)
	}
	res.Chunks = len(all)
	ms, err := s.manifests(ctx, be)
	if err != nil {
		return res, fmt.Errorf("store: gc: %w", err)
	}
	res.Manifests = len(ms)
	used := map[string]bool{}
	for _, m := range ms {
		for _, f := range m.Files {
			for _, c := range f.Chunks {
				if !c.Zero {
					used[chunkName(s.keys.tenant, c.ID)] = true
				}
			}
		}
	}
	for _, fi := range all {
		if used[fi.Name] {
			res.Referenced++
			continue
		}
		cutoff := s.cfg.Now().Add(-s.cfg.GCGrace)
		if !fi.ModTime.Before(cutoff) {
			res.Young++
			continue
		}
		cur, err := be.Stat(ctx, fi.Name)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("store: gc: %w", err)
		}
		if !cur.ModTime.Before(cutoff) {
			res.Young++ // rewritten since the listing
			continue
		}
		// Delete through the full backend so that caches drop it too.
		if err := s.be.Delete(ctx, fi.Name); err != nil {
			return res, fmt.Errorf("store: gc: %w", err)
		}
		res.Deleted++
		res.DeletedBytes += fi.Size
	}
	return res, nil
}

// Stats describes the tenant's part of the store.
type Stats struct {
	Snapshots int `json:"snapshots"`
	// Chunks and StoredBytes count the chunk objects in the origin store.
	Chunks      int   `json:"chunks"`
	StoredBytes int64 `json:"stored_bytes"`
	// LogicalBytes is the total size of all files of all snapshots;
	// ZeroBytes the part of it in zero chunks, which is not stored.
	LogicalBytes int64 `json:"logical_bytes"`
	ZeroBytes    int64 `json:"zero_bytes"`
	// ReferencedBytes sums the plaintext of every non-zero chunk reference
	// of every snapshot, counting repeats.
	ReferencedBytes int64 `json:"referenced_bytes"`
	// DedupRatio is ReferencedBytes / StoredBytes: how many times each
	// stored byte is used. Zero chunks are excluded (see ZeroBytes).
	DedupRatio float64 `json:"dedup_ratio"`
	// Reads and Tiers are this process's read counters.
	Reads Counters   `json:"reads"`
	Tiers []TierStat `json:"tiers"`
}

// Stats lists the origin store and reads every manifest.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Reads: s.Counters(), Tiers: s.TierStats()}
	be := s.origin()
	if err := be.List(ctx, "chunks/"+s.keys.tenant+"/", func(fi ObjectInfo) error {
		st.Chunks++
		st.StoredBytes += fi.Size
		return nil
	}); err != nil {
		return st, fmt.Errorf("store: stats: %w", err)
	}
	ms, err := s.manifests(ctx, be)
	if err != nil {
		return st, fmt.Errorf("store: stats: %w", err)
	}
	st.Snapshots = len(ms)
	for _, m := range ms {
		for _, f := range m.Files {
			st.LogicalBytes += f.Size
			for _, c := range f.Chunks {
				if c.Zero {
					st.ZeroBytes += int64(c.Size)
				} else {
					st.ReferencedBytes += int64(c.Size)
				}
			}
		}
	}
	if st.StoredBytes > 0 {
		st.DedupRatio = float64(st.ReferencedBytes) / float64(st.StoredBytes)
	}
	return st, nil
}

// VerifyResult says what Verify checked and what it found wrong.
type VerifyResult struct {
	Snapshots int   `json:"snapshots"`
	Chunks    int   `json:"chunks"`
	Bytes     int64 `json:"bytes"`
	// Problems lists each missing or damaged object, one line each.
	Problems []string `json:"problems"`
}

// Verify re-reads every chunk referenced by every manifest from the origin
// store (not from caches), authenticates and decrypts it, and checks that
// its plaintext hashes to its id. It returns an error wrapping
// errdefs.ErrCorrupt when anything is missing or damaged; the result lists
// what.
func (s *Store) Verify(ctx context.Context) (VerifyResult, error) {
	var res VerifyResult
	be := s.origin()
	ids, err := s.snapshotIDs(ctx, be)
	if err != nil {
		return res, fmt.Errorf("store: verify: %w", err)
	}
	refs := map[ChunkID]*ChunkRef{}
	users := map[ChunkID]string{}
	for _, id := range ids {
		m, err := s.loadManifest(ctx, be, id)
		if errors.Is(err, errdefs.ErrUnavailable) || ctx.Err() != nil {
			return res, fmt.Errorf("store: verify: %w", err)
		}
		if err != nil {
			res.Problems = append(res.Problems, err.Error())
			continue
		}
		res.Snapshots++
		for fi := range m.Files {
			for ci := range m.Files[fi].Chunks {
				c := &m.Files[fi].Chunks[ci]
				if !c.Zero && refs[c.ID] == nil {
					refs[c.ID] = c
					users[c.ID] = m.Snapshot + "/" + m.Files[fi].Name
				}
			}
		}
	}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, s.cfg.Concurrency)
	)
	var fatal error
	for id, ref := range refs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			plain, err := s.fetch(ctx, be, ref)
			if err == nil && s.keys.chunkID(plain) != id {
				err = fmt.Errorf("chunk %s: content does not match its id: %w", id, errdefs.ErrCorrupt)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				res.Chunks++
				res.Bytes += int64(len(plain))
			case errors.Is(err, errdefs.ErrUnavailable) || ctx.Err() != nil:
				if fatal == nil {
					fatal = err
				}
			default:
				res.Problems = append(res.Problems, fmt.Sprintf("%s (used by %s): %v", chunkName(s.keys.tenant, id), users[id], err))
			}
		}()
	}
	wg.Wait()
	if fatal != nil {
		return res, fmt.Errorf("store: verify: %w", fatal)
	}
	if len(res.Problems) > 0 {
		return res, fmt.Errorf("store: verify: %d problems, first: %s: %w", len(res.Problems), res.Problems[0], errdefs.ErrCorrupt)
	}
	return res, nil
}
