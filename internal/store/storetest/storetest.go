// Package storetest is the conformance suite every store.Backend runs, so
// that the memory, disk, S3 and tiered backends are interchangeable.
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
			if _, err := b.Get(ctx, "chunks/t/none"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("Get missing: err = %v, want ErrNotFound", err)
			}
			if _, err := b.Stat(ctx, "chunks/t/none"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("Stat missing: err = %v, want ErrNotFound", err)
			}
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
				got, err := b.Get(ctx, name)
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("Get %s: %d bytes differ from the %d put", name, len(got), len(data))
				}
				fi, err := b.Stat(ctx, name)
				if err != nil {
					t.Fatalf("Stat: %v", err)
				}
				if fi.Name != name || fi.Size != int64(size) {
					t.Fatalf("Stat = %+v, want name %s size %d", fi, name, size)
				}
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
			want := []string{"chunks/t/aa/1", "chunks/t/aa/2", "chunks/t/bb/3"}
			for _, n := range want {
				mustPut(t, b, n, []byte(n))
			}
			mustPut(t, b, "manifests/t/m", []byte("m"))
			mustPut(t, b, "chunks/u/x", []byte("other tenant"))
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
