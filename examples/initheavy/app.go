package main

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	thaw "github.com/thaw-run/thaw/sdk/go"
)

// App is the function: the index plus the per-instance state that must
// differ between clones of one snapshot.
type App struct {
	ix       *Index
	initTime time.Duration
	booted   time.Time

	mu  sync.Mutex
	rng *mrand.ChaCha8 // reseeded on restore: see Reseed
}

// NewApp builds the index for c. This is the expensive initialisation a
// snapshot saves.
func NewApp(c Corpus) *App {
	start := time.Now()
	a := &App{ix: BuildIndex(c), booted: start}
	a.initTime = time.Since(start)
	a.Reseed()
	return a
}

// Reseed gives the instance a fresh generator from crypto/rand. It runs at
// init and again in every restored clone (thaw.OnRestore); without it,
// every clone would repeat the snapshotted generator's sequence.
func (a *App) Reseed() {
	var seed [32]byte
	rand.Read(seed[:])
	a.mu.Lock()
	a.rng = mrand.NewChaCha8(seed)
	a.mu.Unlock()
}

// ServeHTTP routes:
//
//	/?q=term [term...]  search: documents containing every term
//	/stats              the size of the state (deterministic)
//	/rand               16 bytes of crypto/rand, a draw from the
//	                    instance's own ChaCha8 generator and one from
//	                    the SDK's thaw.Rand
//	/time               wall clock, raw monotonic clock, time since init
//	/gather?n=N&seed=S  checksum of N document rows picked pseudo-randomly:
//	                    an embedding- or feature-lookup shaped request
//	                    that touches N scattered pages and computes little
//
// The build time of the index is in the /stats response's Thaw-Init-Ns
// header rather than its body, so that bodies of booted and restored
// instances compare equal.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/":
		a.search(w, r)
	case "/gather":
		a.gather(w, r)
	case "/stats":
		w.Header().Set("Thaw-Init-Ns", strconv.FormatInt(int64(a.initTime), 10))
		c := a.ix.corpus
		writeJSON(w, map[string]any{
			"docs": c.Docs, "terms": c.Vocab, "tokens": c.Docs * c.DocLen,
			"postings": len(a.ix.postings), "state_bytes": a.ix.Bytes(),
		})
	case "/rand":
		var b [16]byte
		rand.Read(b[:])
		a.mu.Lock()
		n := a.rng.Uint64()
		a.mu.Unlock()
		writeJSON(w, map[string]string{"crypto": hex.EncodeToString(b[:]), "chacha8": fmt.Sprintf("%016x", n),
			"sdk": fmt.Sprintf("%016x", thaw.Rand().Uint64())})
	case "/time":
		writeJSON(w, map[string]int64{
			"unix_ns":       time.Now().UnixNano(),
			"mono_ns":       monotonic(),
			"since_boot_ns": int64(time.Since(a.booted)),
		})
	default:
		http.NotFound(w, r)
	}
}

func (a *App) search(w http.ResponseWriter, r *http.Request) {
	q := strings.Fields(r.URL.Query().Get("q"))
	if len(q) == 0 {
		http.Error(w, "usage: /?q=term [term...]", http.StatusBadRequest)
		return
	}
	top := 10
	if s := r.URL.Query().Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxScored {
			http.Error(w, "top must be 1 to "+strconv.Itoa(maxScored), http.StatusBadRequest)
			return
		}
		top = n
	}
	matches, hits := a.ix.Search(q, top)
	// A digest over the hits makes the answer depend on every posting
	// visited, so a wrongly restored page shows up as a different body.
	var digest uint64
	for _, h := range hits {
		digest = digest*1099511628211 ^ uint64(h.Doc)<<8 ^ uint64(h.Score)
	}
	var d [8]byte
	binary.LittleEndian.PutUint64(d[:], digest)
	writeJSON(w, map[string]any{"q": q, "matches": matches, "hits": hits, "digest": hex.EncodeToString(d[:])})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// maxGather bounds /gather's n.
const maxGather = 1 << 16

// gather sums the first term of n pseudo-randomly chosen documents. Like
// a model server's embedding lookups, it touches many scattered pages of
// the state built at init and computes almost nothing per page, so its
// latency after a restore is dominated by how its memory arrives.
func (a *App) gather(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil || n < 1 || n > maxGather {
		http.Error(w, "n must be 1 to "+strconv.Itoa(maxGather), http.StatusBadRequest)
		return
	}
	seed, _ := strconv.ParseUint(q.Get("seed"), 10, 64)
	c := a.ix.corpus
	x := seed*2862933555777941757 + 3037000493
	var sum uint64
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		d := int(x>>33) % c.Docs
		sum = sum*31 + uint64(a.ix.docs[d*c.DocLen]&^dupBit)
	}
	writeJSON(w, map[string]any{"n": n, "seed": seed, "sum": sum})
}
