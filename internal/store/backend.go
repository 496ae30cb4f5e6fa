// Package store is thaw's snapshot store: snapshot files cut into
// fixed-size chunks, named by a keyed hash of their content, deduplicated
// within a tenant, convergently encrypted and authenticated, described by
// an encrypted manifest, and kept in a Backend (usually a tiered one:
// memory -> disk -> S3). See docs/store.md for the scheme and threat model.
//
// The package has two halves. Backend and ObjectInfo are the narrow storage
// seam implemented by the subpackages mem, disk, s3 and tiered and checked
// by the shared conformance suite in storetest. Store, Snapshot and File are
// the chunk store built on top of any Backend.
package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Backend holds named, immutable-once-written objects. Names are
// slash-separated paths such as "chunks/acme/ab/ab12..." or
// "manifests/acme/fn-1"; see ValidName.
//
// Objects are small (a chunk is at most the chunk size plus a few dozen
// bytes, a manifest a few tens of KiB), so the interface moves whole
// objects as byte slices. There is deliberately no ranged Get: a chunk is
// authenticated as a whole, so a partial read could never be trusted.
//
// Implementations must be safe for concurrent use and wrap their errors
// with the categories of internal/errdefs: errdefs.ErrNotFound for a
// missing object, errdefs.ErrUnavailable when the storage cannot be
// reached, errdefs.ErrTooLarge when an object does not fit.
type Backend interface {
	// Get returns the whole object.
	Get(ctx context.Context, name string) ([]byte, error)
	// Put stores data under name, replacing any previous object. A
	// successful Put is durable to the extent the backend is (a memory
	// cache is not) and visible to the next Get.
	Put(ctx context.Context, name string, data []byte) error
	// Delete removes the object. Deleting a missing object is not an
	// error, so that garbage collection and cache invalidation can race.
	Delete(ctx context.Context, name string) error
	// Stat describes the object without reading it.
	Stat(ctx context.Context, name string) (ObjectInfo, error)
	// List calls fn for every object whose name starts with prefix, in no
	// particular order; an error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name string
	Size int64
	// ModTime is when the object was last written. Garbage collection uses
	// it as the upload lease: a chunk written recently is never deleted.
	ModTime time.Time
}

// VerifyingGetter is an optional Backend capability: a backend made of
// several copies (tiers) that can try the next copy when one fails check.
// Store uses it so that a tampered or truncated cache entry is dropped and
// refetched instead of failing the read.
type VerifyingGetter interface {
	// GetVerified returns the first copy of name, in tier order, for which
	// check returns nil. A copy that fails check with errdefs.ErrCorrupt is
	// deleted from its tier when that tier is a cache.
	GetVerified(ctx context.Context, name string, check func([]byte) error) ([]byte, error)
}

// getChecked reads name from be and runs check on it: through
// GetVerified if be can try another copy when one fails check, else one
// Get.
func getChecked(ctx context.Context, be Backend, name string, check func([]byte) error) error {
	if vg, ok := be.(VerifyingGetter); ok {
		_, err := vg.GetVerified(ctx, name, check)
		return err
	}
	obj, err := be.Get(ctx, name)
	if err != nil {
		return err
	}
	return check(obj)
}

// Originer is an optional Backend capability of caching backends: Origin
// returns the view of the authoritative copies only (for a tiered backend:
// its upload queue and the remote store, without the caches). Verify and GC
// use it so that they judge what is really stored, not what is cached.
type Originer interface {
	Origin() Backend
}

// TierStat counts the reads served by one tier of a backend.
type TierStat struct {
	Tier   string `json:"tier"`
	Hits   int64  `json:"hits"`
	Misses int64  `json:"misses"`
	// Bytes is the number of object bytes served by this tier.
	Bytes int64 `json:"bytes"`
	// Corrupt counts copies that failed authentication and were dropped.
	Corrupt int64 `json:"corrupt"`
}

// TierStatser is an optional Backend capability: per-tier read counters.
type TierStatser interface {
	TierStats() []TierStat
}

// MaxObjectSize bounds the objects a backend reads from local files (the
// disk backend and its shared view, the upload queue; see
// atomicfile.ReadFile):
// a chunk is at most 64 MiB sealed, and the manifest of a snapshot of
// wasm32's largest memory cut into the smallest chunks is under 256 MiB. A
// larger file is damaged or planted and is refused unread, as the S3
// backend refuses objects past its limit.
const MaxObjectSize = 256 << 20

// ValidName reports whether name is acceptable as an object name: non-empty
// slash-separated segments of letters, digits, '.', '-' and '_', none of them
// "." or "..". Backends that map names onto file systems rely on it.
func ValidName(name string) error {
	if name == "" || len(name) > 512 {
		return fmt.Errorf("object name %q: bad length: %w", name, errdefs.ErrInvalid)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("object name %q: bad segment: %w", name, errdefs.ErrInvalid)
		}
		if err := validSegment(seg); err != nil {
			return fmt.Errorf("object name %q: %w", name, err)
		}
	}
	return nil
}

func validSegment(s string) error {
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			return fmt.Errorf("character %q not allowed: %w", c, errdefs.ErrInvalid)
		}
	}
	return nil
}

// Visit calls fn for each of infos in order, stopping at fn's first error or
// when ctx is done. Backends that snapshot their index under a lock use it
// to run fn without holding the lock.
func Visit(ctx context.Context, infos []ObjectInfo, fn func(ObjectInfo) error) error {
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}
