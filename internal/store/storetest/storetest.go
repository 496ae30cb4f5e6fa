// Package storetest is the conformance suite every store.Backend runs, so
// that the memory, disk, S3 and tiered backends and the decorators over
// them are interchangeable. Run is the suite of a backend that writes;
// RunReadOnly the part of it that applies to one that only reads.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
)

// Run runs the conformance suite. newBackend must return an empty backend
// with room for at least 1 MiB of objects; it is called once per subtest.
func Run(t *testing.T, newBackend func(t *testing.T) store.Backend) {
	ctx := context.Background()
	tests := []struct {
		name string
		fn   func(t *testing.T, b store.Backend)
	}{
		{"Missing", func(t *testing.T, b store.Backend) {
			wantMissing(t, b, "chunks/t/none")
			if err := b.Delete(ctx, "chunks/t/none"); err != nil {
				t.Fatalf("Delete missing: %v", err)
			}
		}},
		{"RoundTrip", func(t *testing.T, b store.Backend) {
			for _, size := range []int{0, 1, 4096, 300 << 10} {
				name := fmt.Sprintf("chunks/t/obj-%d", size)
				data := pattern(size, byte(size))
				before := time.Now().Add(-time.Minute) // tolerate clock skew with a server
				if err := b.Put(ctx, name, data); err != nil {
					t.Fatalf("Put %d bytes: %v", size, err)
				}
				fi := wantObject(t, b, name, data)
				if fi.ModTime.Before(before) {
					t.Fatalf("Stat ModTime %v is before the Put (%v)", fi.ModTime, before)
				}
			}
		}},
		{"PutCopiesCallerBuffer", func(t *testing.T, b store.Backend) {
			data := pattern(100, 1)
			if err := b.Put(ctx, "chunks/t/a", data); err != nil {
				t.Fatal(err)
			}
			data[0] ^= 0xff
			got, err := b.Get(ctx, "chunks/t/a")
			if err != nil {
				t.Fatal(err)
			}
			if got[0] == data[0] {
				t.Fatal("Put kept a reference to the caller's buffer")
			}
		}},
		{"Overwrite", func(t *testing.T, b store.Backend) {
			mustPut(t, b, "manifests/t/s", []byte("one"))
			mustPut(t, b, "manifests/t/s", []byte("second"))
			got, err := b.Get(ctx, "manifests/t/s")
			if err != nil || string(got) != "second" {
				t.Fatalf("Get after overwrite = %q, %v; want %q", got, err, "second")
			}
		}},
		{"Delete", func(t *testing.T, b store.Backend) {
			mustPut(t, b, "chunks/t/d", []byte("x"))
			if err := b.Delete(ctx, "chunks/t/d"); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Get(ctx, "chunks/t/d"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
			}
		}},
		{"List", func(t *testing.T, b store.Backend) {
			for n, data := range listed() {
				mustPut(t, b, n, data)
			}
			wantList(t, b)
		}},
		{"InvalidNames", func(t *testing.T, b store.Backend) {
			for _, name := range []string{"", "/abs", "a//b", "a/../b", "a/./b", "a b", "a\x00b", "trailing/"} {
				if err := b.Put(ctx, name, []byte("x")); !errors.Is(err, errdefs.ErrInvalid) {
					t.Errorf("Put(%q): err = %v, want ErrInvalid", name, err)
				}
			}
		}},
		{"Concurrent", func(t *testing.T, b store.Backend) {
			// A hammer: writers and readers of overlapping names. Every Get
			// that succeeds must return one of the values written.
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 20 {
						name := fmt.Sprintf("chunks/t/h%d", i%5)
						if err := b.Put(ctx, name, pattern(1000, byte(w))); err != nil {
							t.Errorf("Put: %v", err)
							return
						}
						got, err := b.Get(ctx, name)
						if err != nil {
							t.Errorf("Get: %v", err)
							return
						}
						if len(got) != 1000 || !bytes.Equal(got, pattern(1000, got[0])) {
							t.Errorf("Get %s returned a torn object", name)
							return
						}
					}
				}()
			}
			wg.Wait()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBackend(t)) })
	}
}

// RunReadOnly runs the suite of a backend that only reads. newBackend must
// return a backend holding exactly objects (names to contents); it is
// called once per subtest. Put and Delete must fail with errdefs.ErrInvalid
// and change nothing.
func RunReadOnly(t *testing.T, newBackend func(t *testing.T, objects map[string][]byte) store.Backend) {
	ctx := context.Background()
	objects := listed()
	for _, size := range []int{0, 1, 4096, 300 << 10} {
		objects[fmt.Sprintf("chunks/v/obj-%d", size)] = pattern(size, byte(size))
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b store.Backend)
	}{
		{"Missing", func(t *testing.T, b store.Backend) { wantMissing(t, b, "chunks/t/none") }},
		{"Read", func(t *testing.T, b store.Backend) {
			for name, data := range objects {
				wantObject(t, b, name, data)
			}
		}},
		{"List", wantList},
		{"RefusesWrites", func(t *testing.T, b store.Backend) {
			if err := b.Put(ctx, "chunks/t/new", []byte("x")); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Put new: err = %v, want ErrInvalid", err)
			}
			wantMissing(t, b, "chunks/t/new")
			if err := b.Put(ctx, "chunks/t/aa/1", []byte("x")); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Put over an object: err = %v, want ErrInvalid", err)
			}
			if err := b.Delete(ctx, "chunks/t/aa/2"); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Delete: err = %v, want ErrInvalid", err)
			}
			for _, name := range []string{"chunks/t/aa/1", "chunks/t/aa/2"} {
				wantObject(t, b, name, objects[name])
			}
		}},
		{"ConcurrentReads", func(t *testing.T, b store.Backend) {
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 5 {
						for name, data := range objects {
							got, err := b.Get(ctx, name)
							if err != nil || !bytes.Equal(got, data) {
								t.Errorf("Get %s: %d bytes, %v; want the %d seeded", name, len(got), err, len(data))
								return
							}
						}
					}
				}()
			}
			wg.Wait()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBackend(t, objects)) })
	}
}

// listed returns the objects wantList expects to find: three of tenant t's
// chunks (each holding its name), a manifest and another tenant's chunk.
func listed() map[string][]byte {
	m := map[string][]byte{}
	for _, n := range []string{"chunks/t/aa/1", "chunks/t/aa/2", "chunks/t/bb/3", "manifests/t/m", "chunks/u/x"} {
		m[n] = []byte(n)
	}
	return m
}

// wantList checks that b, holding the objects of listed (and possibly
// others outside chunks/t/), lists exactly tenant t's chunks under their
// prefix, and that an error from the callback stops the listing.
func wantList(t *testing.T, b store.Backend) {
	t.Helper()
	ctx := context.Background()
	want := []string{"chunks/t/aa/1", "chunks/t/aa/2", "chunks/t/bb/3"}
	var got []string
	err := b.List(ctx, "chunks/t/", func(fi store.ObjectInfo) error {
		if fi.Size != int64(len(fi.Name)) {
			t.Errorf("List %s: size %d, want %d", fi.Name, fi.Size, len(fi.Name))
		}
		got = append(got, fi.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	err = b.List(ctx, "chunks/", func(store.ObjectInfo) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("List with failing callback: err = %v after %d calls, want stop after 1", err, n)
	}
}

// wantMissing checks that b has no object name.
func wantMissing(t *testing.T, b store.Backend, name string) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.Get(ctx, name); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get missing %s: err = %v, want ErrNotFound", name, err)
	}
	if _, err := b.Stat(ctx, name); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Stat missing %s: err = %v, want ErrNotFound", name, err)
	}
}

// wantObject checks that b holds data under name, by Get and Stat, and
// returns what Stat said.
func wantObject(t *testing.T, b store.Backend, name string, data []byte) store.ObjectInfo {
	t.Helper()
	ctx := context.Background()
	got, err := b.Get(ctx, name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("Get %s: %d bytes differ from the %d put", name, len(got), len(data))
	}
	fi, err := b.Stat(ctx, name)
	if err != nil {
		t.Fatalf("Stat %s: %v", name, err)
	}
	if fi.Name != name || fi.Size != int64(len(data)) {
		t.Fatalf("Stat = %+v, want name %s size %d", fi, name, len(data))
	}
	return fi
}

// pattern returns n bytes that differ per seed and per position, so a torn
// or truncated object is detectable.
func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7)
	}
	return p
}

func mustPut(t *testing.T, b store.Backend, name string, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), name, data); err != nil {
		t.Fatalf("Put %s: %v", name, err)
	}
}

// Secret returns a new random master secret (store.GenerateSecret, as
// store.ParseSecret reads it back), for tests that open a store.
func Secret(t testing.TB) []byte {
	t.Helper()
	s, err := store.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
