package pager

import (
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/uffd"
)

// benchPages is the region size the benchmarks install: 16 MiB.
const benchPages = 4096

// BenchmarkInstall compares the per-page cost of lazy paging (one fault
// round trip to the pager per page, or per readahead run) with REAP-style
// prefetch (one batched UFFDIO_COPY of the same pages from memory). The
// image is in the page cache, so the lazy figure is the round trip, not
// disk time.
func BenchmarkInstall(b *testing.B) {
	needUffd(b)
	p := startPager(b)
	img := writeImage(b, b.TempDir(), 1, benchPages, benchPages, 0)
	src, err := uffd.Mmap(benchPages * pageSize)
	if err != nil {
		b.Fatal(err)
	}
	defer uffd.Munmap(src)
	copy(src, img.content)

	for _, bc := range []struct {
		name      string
		lazy      bool
		readahead int
	}{
		{"lazy/readahead=0", true, 0},
		{"lazy/readahead=15", true, 15},
		{"copy/batched", false, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var total, serveTime time.Duration
			var faults uint64
			for b.Loop() {
				b.StopTimer()
				r := newBenchRegion(b)
				var s *Session
				if bc.lazy {
					s = serve(b, p, r, img, Spec{Readahead: bc.readahead})
				}
				b.StartTimer()
				t0 := time.Now()
				if bc.lazy {
					var sum byte
					for pg := range benchPages {
						sum += r.mem[pg*pageSize]
					}
					sink = sum
				} else if _, err := r.u.Copy(uffd.Addr(r.mem), uffd.Addr(src), benchPages*pageSize); err != nil {
					b.Fatal(err)
				}
				total += time.Since(t0)
				b.StopTimer()
				if s != nil {
					st, err := s.Stats()
					if err != nil {
						b.Fatal(err)
					}
					serveTime += st.ServeTime
					faults += st.Faults
					s.Close()
				}
				r.close()
				b.StartTimer()
			}
			pages := float64(b.N) * benchPages
			b.ReportMetric(float64(total.Nanoseconds())/pages, "ns/page")
			if faults > 0 {
				b.ReportMetric(float64(serveTime.Nanoseconds())/float64(faults), "pager-ns/fault")
			}
			b.ReportMetric(0, "ns/op") // per-op time mixes in setup; ns/page is the figure
		})
	}
}

var sink byte

// newBenchRegion is newRegion without t.Cleanup, so each iteration frees
// its region at once.
func newBenchRegion(b *testing.B) *region {
	mem, err := uffd.Mmap(benchPages * pageSize)
	if err != nil {
		b.Fatal(err)
	}
	u, err := uffd.Open()
	if err != nil {
		b.Fatal(err)
	}
	if err := u.Register(uffd.Addr(mem), uint64(len(mem))); err != nil {
		b.Fatal(err)
	}
	return &region{mem: mem, u: u}
}

func (r *region) close() {
	r.u.Close()
	uffd.Munmap(r.mem)
}

// BenchmarkStart measures starting (and stopping) a pager process.
func BenchmarkStart(b *testing.B) {
	needUffd(b)
	for b.Loop() {
		p, err := Start(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		p.Close()
	}
}

// BenchmarkStats measures one request/response round trip to the pager.
func BenchmarkStats(b *testing.B) {
	needUffd(b)
	p := startPager(b)
	img := writeImage(b, b.TempDir(), 1, 4, 4, 0)
	r := newRegion(b, 4)
	s := serve(b, p, r, img, Spec{})
	for b.Loop() {
		if _, err := s.Stats(); err != nil {
			b.Fatal(err)
		}
	}
}
