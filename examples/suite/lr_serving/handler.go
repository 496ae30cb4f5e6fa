package main

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"unicode"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// features is the size of the hashed feature space. 2^19 float64 weights
// make a 4 MiB model, generated at init: the snapshot holds it as the
// Python original holds its unpickled scikit-learn model.
const features = 1 << 19

// defaultReview is scored when the request has no text.
const defaultReview = "The new version is fast and the setup was easy, but the documentation is thin and support never answered my question."

// model is a binary logistic regression over hashed unigrams and bigrams.
type model struct {
	w    []float64
	bias float64
}

// newModel draws weights from a seeded normal distribution so every
// instance, and every restored clone, has the same model.
func newModel() *model {
	rng := rand.New(rand.NewPCG(2019, 1))
	m := &model{w: make([]float64, features), bias: -0.1}
	for i := range m.w {
		m.w[i] = rng.NormFloat64() * 0.5
	}
	return m
}

// result is lr_serving's JSON answer.
type result struct {
	Tokens      int     `json:"tokens"`
	Probability float64 `json:"probability"`
	Label       string  `json:"label"`
}

// Handler scores the sentiment of a review: ?text= on GET or the body on
// POST, default a fixed review. The text is tokenised, hashed into
// unigram and bigram TF features (the "hashing trick" stands in for the
// original's TF-IDF vocabulary) and fed to the logistic regression.
func Handler() http.Handler {
	m := newModel()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		text := r.URL.Query().Get("text")
		if r.Method == http.MethodPost {
			body, err := fn.Body(r)
			if err != nil {
				fn.Error(w, http.StatusRequestEntityTooLarge, "%v", err)
				return
			}
			text = string(body)
		}
		if text == "" {
			text = defaultReview
		}
		if len(text) > 1<<20 {
			fn.Error(w, http.StatusBadRequest, "text is longer than 1 MiB")
			return
		}
		p, n := m.predict(text)
		label := "negative"
		if p >= 0.5 {
			label = "positive"
		}
		fn.JSON(w, result{Tokens: n, Probability: math.Round(p*1e9) / 1e9, Label: label})
	})
}

// predict returns the probability that text is positive and the number of
// tokens it has.
func (m *model) predict(text string) (float64, int) {
	toks := tokens(text)
	if len(toks) == 0 {
		return sigmoid(m.bias), 0
	}
	tf := make(map[uint32]float64, 2*len(toks))
	for i, t := range toks {
		tf[hash(t)]++
		if i > 0 {
			tf[hash(toks[i-1]+" "+t)]++
		}
	}
	z := m.bias
	norm := 1 / float64(len(toks))
	for f, c := range tf {
		z += m.w[f] * c * norm
	}
	return sigmoid(z), len(toks)
}

// tokens lower-cases text and splits it into letter-or-digit runs.
func tokens(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// hash maps a token to its feature index.
func hash(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32() % features
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
