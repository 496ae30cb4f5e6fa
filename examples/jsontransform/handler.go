package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBody bounds the document; the platform bounds bodies too, but a
// function should not trust that.
const maxBody = 8 << 20

// Result is the transformed document and what was found in it.
type Result struct {
	// Doc is the input with every string value upper-cased, object keys
	// sorted (encoding/json sorts map keys) and numbers kept verbatim.
	Doc any `json:"doc"`
	// Numbers is how many numbers the document holds, Sum their sum.
	Numbers int     `json:"numbers"`
	Sum     float64 `json:"sum"`
	// Strings counts string values (not keys); Depth is the nesting depth,
	// counting the leaves: a lone scalar has depth 1, [1] depth 2.
	Strings int `json:"strings"`
	Depth   int `json:"depth"`
}

// Handler accepts POST / with a JSON document and answers its Result as
// JSON. It is deterministic: equal documents give equal bytes. Malformed
// JSON is a 400, any method but POST a 405.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST a JSON document", http.StatusMethodNotAllowed)
			return
		}
		doc, err := decode(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		res := &Result{}
		res.Doc = res.transform(doc, 1)
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		if err := enc.Encode(res); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
}

// decode reads exactly one JSON value, keeping numbers as written.
func decode(r io.Reader) (any, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty body")
		}
		return nil, err
	}
	if dec.InputOffset() > maxBody {
		return nil, fmt.Errorf("document larger than %d bytes", maxBody)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the document")
	}
	return doc, nil
}

func (res *Result) transform(v any, depth int) any {
	res.Depth = max(res.Depth, depth)
	switch v := v.(type) {
	case string:
		res.Strings++
		return strings.ToUpper(v)
	case json.Number:
		res.Numbers++
		f, _ := v.Float64() // the decoder only produces valid numbers
		res.Sum += f
		return v
	case []any:
		for i := range v {
			v[i] = res.transform(v[i], depth+1)
		}
		return v
	case map[string]any:
		for k := range v {
			v[k] = res.transform(v[k], depth+1)
		}
		return v
	default: // bool, nil
		return v
	}
}
