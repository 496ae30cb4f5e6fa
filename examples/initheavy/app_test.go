package main

import (
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"
	"time"
)

var small = Corpus{Docs: 3000, DocLen: 32, Vocab: 1 << 16}

func get(t *testing.T, a *App, target string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	var v map[string]any
	if rec.Code == 200 {
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s: bad JSON %q: %v", target, rec.Body, err)
		}
	}
	return rec.Code, v
}

// The function's real state (built at package init, as in the module) is
// about 100 MiB, and the query terms the platform uses hit small lists.
func TestDefaultState(t *testing.T) {
	code, st := get(t, app, "/stats")
	if code != 200 {
		t.Fatalf("/stats: %d", code)
	}
	if b := st["state_bytes"].(float64); b < 90<<20 || b > 110<<20 {
		t.Errorf("state is %.0f MiB, want about 100", b/(1<<20))
	}
	for _, g := range greek {
		n := len(app.ix.list(must(app.ix.ID(g))))
		if n == 0 || n > 10000 {
			t.Errorf("%s has %d postings, want a small non-empty list", g, n)
		}
	}
}

func TestIndexIsDeterministic(t *testing.T) {
	a, b := BuildIndex(small), BuildIndex(small)
	if !slices.Equal(a.docs, b.docs) || !slices.Equal(a.postings, b.postings) || !slices.Equal(a.offsets, b.offsets) {
		t.Fatal("two builds of one corpus differ")
	}
}

// Search agrees with a brute-force scan of the documents.
func TestSearchMatchesBruteForce(t *testing.T) {
	ix := BuildIndex(small)
	queries := [][]string{{"alpha"}, {"zeta"}, {word(3)}, {word(0), word(1)}, {word(5), word(9), word(2)}, {"nosuchword"}}
	for _, q := range queries {
		t.Run(fmt.Sprint(q), func(t *testing.T) {
			want := 0
			for d := 0; d < small.Docs; d++ {
				row := ix.docs[d*small.DocLen : (d+1)*small.DocLen]
				all := true
				for _, w := range q {
					id, ok := ix.ID(w)
					all = all && ok && (slices.Contains(row, id) || slices.Contains(row, id|dupBit))
				}
				if all {
					want++
				}
			}
			got, hits := ix.Search(q, 5)
			if got != want {
				t.Fatalf("%d matches, brute force %d", got, want)
			}
			if len(hits) != min(5, want) {
				t.Fatalf("%d hits", len(hits))
			}
			for i := 1; i < len(hits); i++ {
				if hits[i].Score > hits[i-1].Score {
					t.Fatalf("hits not sorted by score: %+v", hits)
				}
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	a := NewApp(small)
	cases := []struct {
		target string
		want   int
	}{
		{"/?q=alpha", 200}, {"/?q=alpha+beta&top=3", 200}, {"/?q=nosuchword", 200},
		{"/", 400}, {"/?q=alpha&top=0", 400}, {"/?q=alpha&top=x", 400},
		{"/stats", 200}, {"/rand", 200}, {"/time", 200}, {"/nope", 404},
	}
	for _, c := range cases {
		t.Run(c.target, func(t *testing.T) {
			if code, _ := get(t, a, c.target); code != c.want {
				t.Fatalf("status %d, want %d", code, c.want)
			}
		})
	}
	_, r1 := get(t, a, "/?q=alpha")
	_, r2 := get(t, a, "/?q=alpha")
	if !reflect.DeepEqual(r1, r2) {
		t.Error("search answers differ between calls")
	}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/stats", nil))
	if rec.Header().Get("Thaw-Init-Ns") == "" {
		t.Error("/stats lacks Thaw-Init-Ns")
	}
}

// Two clones of one snapshot hold the same generator state; Reseed (the
// OnRestore hook) must make their draws differ.
func TestReseedSeparatesClones(t *testing.T) {
	a := NewApp(Corpus{Docs: 1, DocLen: 1, Vocab: 1 << 16})
	state, err := a.rng.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	clone := func() *App {
		c := &App{ix: a.ix, booted: a.booted}
		c.rng = rngFrom(t, state)
		return c
	}
	x, y := clone(), clone()
	_, rx := get(t, x, "/rand")
	_, ry := get(t, y, "/rand")
	if rx["chacha8"] != ry["chacha8"] {
		t.Fatal("clones without a reseed should repeat each other (test is broken)")
	}
	if rx["crypto"] == ry["crypto"] {
		t.Fatal("crypto/rand repeated")
	}
	x, y = clone(), clone()
	x.Reseed()
	y.Reseed()
	_, rx = get(t, x, "/rand")
	_, ry = get(t, y, "/rand")
	if rx["chacha8"] == ry["chacha8"] {
		t.Fatal("reseeded clones drew the same number")
	}
}

func TestTime(t *testing.T) {
	_, v := get(t, NewApp(Corpus{Docs: 1, DocLen: 1, Vocab: 1 << 16}), "/time")
	if d := time.Since(time.Unix(0, int64(v["unix_ns"].(float64)))); d < -time.Minute || d > time.Minute {
		t.Errorf("unix_ns is %v off", d)
	}
	if v["mono_ns"].(float64) <= 0 || v["since_boot_ns"].(float64) <= 0 {
		t.Errorf("bad clocks: %v", v)
	}
}

// rngFrom builds a generator in a given state, as a restored clone has.
func rngFrom(t *testing.T, state []byte) *mrand.ChaCha8 {
	t.Helper()
	r := new(mrand.ChaCha8)
	if err := r.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	return r
}

func must(id uint32, ok bool) uint32 {
	if !ok {
		panic("unknown word")
	}
	return id
}

// ID inverts word for every term, and rejects everything else.
func TestID(t *testing.T) {
	ix := &Index{corpus: DefaultCorpus}
	for i := 0; i < DefaultCorpus.Vocab; i++ {
		if id, ok := ix.ID(word(i)); !ok || id != uint32(i) {
			t.Fatalf("ID(word(%d) = %q) = %d, %v", i, word(i), id, ok)
		}
	}
	greekSlot := syllableWord(greekRank0)
	for _, w := range []string{"", "alph", "kakakak", "kakakakaka", "akakakak", "Kakakaka", greekSlot} {
		if id, ok := ix.ID(w); ok {
			t.Errorf("ID(%q) = %d, want unknown", w, id)
		}
	}
	if _, ok := (&Index{corpus: small}).ID(word(small.Vocab - 1)); !ok {
		t.Error("last term of a small vocabulary unknown")
	}
}

// syllableWord spells id as a syllable word even where a Greek name
// takes its place.
func syllableWord(id int) string {
	var b []byte
	for k := 0; k < 4; k++ {
		s := (id >> (4 * k)) & 15
		b = append(b, syllables[2*s:2*s+2]...)
	}
	return string(b)
}

func TestGather(t *testing.T) {
	a := NewApp(Corpus{Docs: 1000, DocLen: 8, Vocab: 256})
	code, first := get(t, a, "/gather?n=100&seed=7")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	_, again := get(t, a, "/gather?n=100&seed=7")
	_, other := get(t, a, "/gather?n=100&seed=8")
	if first["sum"] != again["sum"] || first["sum"] == other["sum"] {
		t.Fatalf("gather must be deterministic per seed and differ across seeds: %v %v %v", first, again, other)
	}
	for _, bad := range []string{"/gather", "/gather?n=0", "/gather?n=x", "/gather?n=99999999"} {
		if code, _ := get(t, a, bad); code != 400 {
			t.Errorf("%s: status %d, want 400", bad, code)
		}
	}
}
