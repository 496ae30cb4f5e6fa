package main

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/thaw-run/thaw/examples/warmup/internal/curve"
)

func TestModel(t *testing.T) {
	var m model
	for _, i := range []int{0, 1, shardItems, items - 1} {
		var n float64
		for _, v := range m.embedding(i) {
			n += float64(v) * float64(v)
		}
		if math.Abs(n-1) > 1e-4 {
			t.Errorf("item %d has norm² %v, want 1", i, n)
		}
	}
	ns := m.similar(3, 4)
	if len(ns) != 4 || ns[0].Similarity < ns[3].Similarity || ns[0].Similarity > 1 {
		t.Errorf("similar = %+v", ns)
	}
	loaded := 0
	for _, s := range m.shard {
		if s != nil {
			loaded++
		}
	}
	if loaded != 3 {
		t.Errorf("%d shards loaded for items of shards 0, 1 and 63, want 3", loaded)
	}
}

// A shard's content does not depend on the order shards are loaded in.
func TestShardOrder(t *testing.T) {
	var a, b model
	a.embedding(items - 1)
	b.embedding(0)
	if !slices.Equal(a.embedding(5), b.embedding(5)) {
		t.Fatal("shard 0 differs after loading shard 63 first")
	}
}

// Popular shards come first: the first requests need few distinct shards,
// later ones keep adding rare shards.
func TestPickSkewed(t *testing.T) {
	seen := map[int]bool{}
	distinct := func(n int) int {
		for i := 1; i <= n; i++ {
			seen[pick(i)/shardItems] = true
		}
		return len(seen)
	}
	at20, at300 := distinct(20), distinct(300)
	if at20 < 5 || at20 > 20 || at300 <= at20+10 || at300 > shards {
		t.Fatalf("%d distinct shards by request 20, %d by 300", at20, at300)
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		target string
		status int
	}{{"/", 200}, {"/?item=65535&k=2", 200}, {"/?item=65536", 400}, {"/?k=0", 400}, {"/?item=x", 400}, {"/?k=513", 400}} {
		t.Run(tc.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.target, nil))
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
		})
	}
}

// TestCurve checks that the lazily loaded model answers the default
// request n as a fresh handler answers ?item=pick(n), and logs the latency
// curve (go test -v -run Curve).
func TestCurve(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 5
	}
	var runs [][]curve.Result
	for range 3 {
		rs := curve.Measure(Handler(), n, func(i int) string { return "/" })
		for i, r := range rs {
			if r.Status != 200 {
				t.Fatalf("request %d: status %d: %s", i+1, r.Status, r.Body)
			}
		}
		for _, i := range []int{0, 1, n - 1} {
			want := httptest.NewRecorder()
			Handler().ServeHTTP(want, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/?item=%d", pick(i+1)), nil))
			if !bytes.Equal(rs[i].Body, want.Body.Bytes()) {
				t.Fatalf("request %d answered %s, a fresh handler for its item %s", i+1, rs[i].Body, want.Body)
			}
		}
		runs = append(runs, rs)
	}
	t.Log("\n" + curve.Header() + "\n" + curve.Table("lazymodel", runs...))
}
