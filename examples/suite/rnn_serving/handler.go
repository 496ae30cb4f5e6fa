package main

import (
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// The PyTorch char-RNN tutorial's alphabet and languages, which
// FunctionBench's rnn_serving model was trained on.
const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;'"

var languages = []string{"Arabic", "Chinese", "Czech", "Dutch", "English", "French", "German", "Greek", "Irish",
	"Italian", "Japanese", "Korean", "Polish", "Portuguese", "Russian", "Scottish", "Spanish", "Vietnamese"}

// Model geometry: the input is a one-hot language plus a one-hot
// character; the output covers the alphabet plus end-of-name.
const (
	hidden = 256
	nIn    = 18 + len(alphabet)
	nOut   = len(alphabet) + 1
	eos    = len(alphabet)
)

// lstm is one LSTM cell and an output projection: 4*256*(75+256) + 58*256
// float32 weights, about 1.4 MB (the PyTorch tutorial's model is smaller
// still), generated at init.
type lstm struct {
	w   []float32 // gates i, f, g, o stacked: [4*hidden][nIn+hidden]
	b   []float32 // [4*hidden]
	out []float32 // [nOut][hidden]
	ob  []float32
}

// newLSTM draws weights uniformly in ±1/sqrt(hidden), PyTorch's default,
// from a seeded generator.
func newLSTM(seed uint64) *lstm {
	rng := rand.New(rand.NewPCG(seed, 0x1571))
	k := 1 / math.Sqrt(hidden)
	uniform := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32((2*rng.Float64() - 1) * k)
		}
		return v
	}
	return &lstm{w: uniform(4 * hidden * (nIn + hidden)), b: uniform(4 * hidden), out: uniform(nOut * hidden), ob: uniform(nOut)}
}

// step advances the cell by one character and returns the output logits.
// Only the two hot inputs contribute, so the input product is two columns.
func (m *lstm) step(lang, char int, h, c []float32) []float32 {
	const cols = nIn + hidden
	gates := slices.Clone(m.b)
	for g := range gates {
		row := m.w[g*cols : (g+1)*cols]
		s := gates[g] + row[lang] + row[18+char]
		for j, v := range h {
			s += row[nIn+j] * v
		}
		gates[g] = s
	}
	for j := range hidden {
		i := sigmoid(gates[j])
		f := sigmoid(gates[hidden+j])
		g := float32(math.Tanh(float64(gates[2*hidden+j])))
		o := sigmoid(gates[3*hidden+j])
		c[j] = f*c[j] + i*g
		h[j] = o * float32(math.Tanh(float64(c[j])))
	}
	logits := slices.Clone(m.ob)
	for o := range logits {
		row := m.out[o*hidden : (o+1)*hidden]
		for j, v := range h {
			logits[o] += row[j] * v
		}
	}
	return logits
}

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// generate returns a name in language lang that starts with start: the
// most likely next character is appended until end-of-name or maxLen.
func (m *lstm) generate(lang int, start byte, maxLen int) string {
	h, c := make([]float32, hidden), make([]float32, hidden)
	name := []byte{start}
	char := strings.IndexByte(alphabet, start)
	for len(name) < maxLen {
		logits := m.step(lang, char, h, c)
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		if best == eos {
			break
		}
		char = best
		name = append(name, alphabet[char])
	}
	return string(name)
}

// result is rnn_serving's JSON answer.
type result struct {
	Language string   `json:"language"`
	Names    []string `json:"names"`
}

// Handler generates one name per letter of ?start_letters= (default "ABC")
// in ?language= (default "English"), each at most ?max_length= (default
// 20) characters, as FunctionBench's rnn_serving does.
func Handler() http.Handler {
	m := newLSTM(1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		q := r.URL.Query()
		lang := q.Get("language")
		if lang == "" {
			lang = "English"
		}
		li := slices.Index(languages, lang)
		if li < 0 {
			fn.Error(w, http.StatusBadRequest, "unknown language %q; known: %s", lang, strings.Join(languages, ", "))
			return
		}
		start := q.Get("start_letters")
		if start == "" {
			start = "ABC"
		}
		if len(start) > 64 {
			fn.Error(w, http.StatusBadRequest, "more than 64 start letters")
			return
		}
		for i := range len(start) {
			if strings.IndexByte(alphabet, start[i]) < 0 {
				fn.Error(w, http.StatusBadRequest, "start letter %q is not in the alphabet", start[i])
				return
			}
		}
		maxLen, err := fn.Int(r, "max_length", 20, 1, 200)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		res := result{Language: lang}
		for i := range len(start) {
			res.Names = append(res.Names, m.generate(li, start[i], maxLen))
		}
		fn.JSON(w, res)
	})
}
