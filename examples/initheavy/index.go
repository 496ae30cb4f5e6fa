package main

import (
	"slices"
	"strings"
)

// Corpus describes the synthetic corpus. Equal corpora build identical
// indexes: generation uses a fixed seed, so every boot of the function
// holds the same state and answers the same.
type Corpus struct {
	Docs, DocLen int // documents, and terms per document
	Vocab        int // distinct terms, at most 1<<16
}

// DefaultCorpus gives 13.1 M tokens: 50 MiB of documents and about 48 MiB
// of posting lists.
var DefaultCorpus = Corpus{Docs: 204800, DocLen: 64, Vocab: 1 << 16}

// greek are the query terms the platform's tests and benchmarks use. They
// sit at middle ranks of the term distribution, so each posting list is a
// few hundred to a few thousand documents: a query touches a small part of
// the index.
var greek = []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
	"lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega"}

const greekRank0, greekStride = 200, 50

// Index is an inverted index in compressed-sparse-row form: a few large
// pointer-free slices, which is how a real index keeps its state and
// keeps the Go collector from scanning it.
type Index struct {
	corpus Corpus
	// docs holds doc d's terms in docs[d*DocLen : (d+1)*DocLen]; a term
	// that repeats within its document has dupBit set.
	docs     []uint32
	offsets  []uint32 // term t's postings: postings[offsets[t]:offsets[t+1]]
	postings []uint32 // sorted document ids
}

// dupBit marks a repeated term in a document row.
const dupBit = 1 << 31

// syllables spell the synthetic words, two letters per nibble of the id.
const syllables = "kalomirasetunovibedagupyfohejicw"

// word names term id i: 24 Greek letters at fixed ranks, and eight-letter
// syllable words elsewhere (which never collide with the Greek names).
func word(i int) string {
	if j := i - greekRank0; j >= 0 && j%greekStride == 0 && j/greekStride < len(greek) {
		return greek[j/greekStride]
	}
	var b [8]byte
	for k := 0; k < 4; k++ {
		s := (i >> (4 * k)) & 15
		copy(b[2*k:], syllables[2*s:2*s+2])
	}
	return string(b[:])
}

// ID returns the term id of w; it inverts word without a table, so the
// index holds nothing but its large slices.
func (ix *Index) ID(w string) (uint32, bool) {
	id := -1
	if j := slices.Index(greek, w); j >= 0 {
		id = greekRank0 + j*greekStride
	} else if len(w) == 8 {
		id = 0
		for k := 0; k < 4; k++ {
			s := strings.Index(syllables, w[2*k:2*k+2])
			if s < 0 || s%2 != 0 {
				return 0, false
			}
			id |= s / 2 << (4 * k)
		}
	}
	if id < 0 || id >= ix.corpus.Vocab || word(id) != w {
		return 0, false
	}
	return uint32(id), true
}

// BuildIndex generates the corpus and indexes it.
func BuildIndex(c Corpus) *Index {
	ix := &Index{corpus: c}
	// Term ranks follow a power law (density ∝ rank^-2/3): a few terms are
	// everywhere, most are rare, like words in text. An inlined xorshift
	// generator keeps the build fast in wasm, where a call per token through
	// rand.Source costs more than the arithmetic. Each (term, doc) pair is
	// counted once as documents are generated, and its repeats are marked
	// so the second pass needs no bookkeeping.
	ix.docs = make([]uint32, c.Docs*c.DocLen)
	count := make([]uint32, c.Vocab+1)
	last := make([]int32, c.Vocab)
	for i := range last {
		last[i] = -1
	}
	x := uint64(0x7468617720696e64)
	for d := 0; d < c.Docs; d++ {
		row := ix.docs[d*c.DocLen : (d+1)*c.DocLen]
		for i := range row {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			u := float64(x>>11) * (1.0 / (1 << 53))
			t := uint32(float64(c.Vocab) * u * u * u)
			if last[t] == int32(d) {
				row[i] = t | dupBit
				continue
			}
			row[i] = t
			last[t] = int32(d)
			count[t+1]++
		}
	}
	// Fill the lists in document order, so every list comes out sorted.
	for t := 1; t <= c.Vocab; t++ {
		count[t] += count[t-1]
	}
	ix.offsets = count
	ix.postings = make([]uint32, count[c.Vocab])
	next := slices.Clone(count[:c.Vocab])
	for d := 0; d < c.Docs; d++ {
		for _, t := range ix.docs[d*c.DocLen : (d+1)*c.DocLen] {
			if t&dupBit == 0 {
				ix.postings[next[t]] = uint32(d)
				next[t]++
			}
		}
	}
	return ix
}

// Bytes is the size of the index's large slices.
func (ix *Index) Bytes() int {
	return 4 * (len(ix.docs) + len(ix.offsets) + len(ix.postings))
}

// Hit is one matching document.
type Hit struct {
	Doc     uint32 `json:"doc"`
	Score   int    `json:"score"`   // occurrences of the query terms
	Snippet string `json:"snippet"` // the document's first words
}

// maxScored bounds how many matches are scored, so a query on a frequent
// term still touches only a bounded part of the index.
const maxScored = 256

// Search returns how many documents contain every term, and the best of
// the first maxScored of them. Unknown terms match nothing.
func (ix *Index) Search(terms []string, top int) (matches int, hits []Hit) {
	var ids []uint32
	for _, w := range terms {
		id, ok := ix.ID(w)
		if !ok {
			return 0, []Hit{}
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return 0, []Hit{}
	}
	docs := ix.list(ids[0])
	for _, id := range ids[1:] {
		docs = intersect(docs, ix.list(id))
	}
	hits = make([]Hit, 0, min(len(docs), maxScored))
	for _, d := range docs[:min(len(docs), maxScored)] {
		row := ix.docs[int(d)*ix.corpus.DocLen : (int(d)+1)*ix.corpus.DocLen]
		h := Hit{Doc: d}
		for _, t := range row {
			if slices.Contains(ids, t&^dupBit) {
				h.Score++
			}
		}
		snippet := make([]string, 0, 8)
		for _, t := range row[:min(8, len(row))] {
			snippet = append(snippet, word(int(t&^dupBit)))
		}
		h.Snippet = strings.Join(snippet, " ")
		hits = append(hits, h)
	}
	slices.SortStableFunc(hits, func(a, b Hit) int { return b.Score - a.Score })
	return len(docs), hits[:min(len(hits), top)]
}

func (ix *Index) list(t uint32) []uint32 { return ix.postings[ix.offsets[t]:ix.offsets[t+1]] }

// intersect returns the documents in both sorted lists, in a new slice.
func intersect(a, b []uint32) []uint32 {
	out := make([]uint32, 0, min(len(a), len(b)))
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
