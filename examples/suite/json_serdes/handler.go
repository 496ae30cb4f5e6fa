package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// document is the default input, about 100 KB of JSON generated at init:
// it stands in for the file FunctionBench's json_serdes downloads, and lives
// in the snapshot as a bundled file would.
var document = makeDocument(250)

// result is json_serdes's JSON answer.
type result struct {
	BytesIn  int    `json:"bytes_in"`
	BytesOut int    `json:"bytes_out"`
	Values   int    `json:"values"`
	Repeat   int    `json:"repeat"`
	SHA256   string `json:"sha256"`
}

// Handler decodes a JSON document into generic values (as Python's
// json.loads does) and encodes it again, ?repeat= times (default 1). GET uses
// the generated document; POST takes any JSON body.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		repeat, err := fn.Int(r, "repeat", 1, 1, 50)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		in := document
		if r.Method == http.MethodPost {
			if in, err = fn.Body(r); err != nil {
				fn.Error(w, http.StatusRequestEntityTooLarge, "%v", err)
				return
			}
		}
		var out []byte
		var v any
		for range repeat {
			v = nil
			if err := json.Unmarshal(in, &v); err != nil {
				fn.Error(w, http.StatusBadRequest, "body is not JSON: %v", err)
				return
			}
			if out, err = json.Marshal(v); err != nil {
				fn.Error(w, http.StatusInternalServerError, "encode: %v", err)
				return
			}
		}
		fn.JSON(w, result{BytesIn: len(in), BytesOut: len(out), Values: count(v), Repeat: repeat, SHA256: fn.Digest(out)})
	})
}

// count returns the number of JSON values in v, containers included.
func count(v any) int {
	n := 1
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			n += count(e)
		}
	case map[string]any:
		for _, e := range v {
			n += count(e)
		}
	}
	return n
}

// makeDocument generates n user records with nested objects, arrays,
// numbers, booleans, nulls and strings that need escaping: each record is
// about 400 bytes.
func makeDocument(n int) []byte {
	rng := rand.New(rand.NewPCG(42, 7))
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "fox\"trot", "golf", "hotel", "india", "juliett", "kilo", "lima<>"}
	word := func() string { return words[rng.IntN(len(words))] }
	type address struct {
		Street string     `json:"street"`
		City   string     `json:"city"`
		Zip    string     `json:"zip"`
		Geo    [2]float64 `json:"geo"`
	}
	type user struct {
		ID       int            `json:"id"`
		Name     string         `json:"name"`
		Email    string         `json:"email"`
		Active   bool           `json:"active"`
		Balance  float64        `json:"balance"`
		Tags     []string       `json:"tags"`
		Address  address        `json:"address"`
		Friends  []int          `json:"friends"`
		Manager  *int           `json:"manager"`
		Settings map[string]any `json:"settings"`
	}
	users := make([]user, n)
	for i := range users {
		u := user{
			ID:      i,
			Name:    word() + " " + word(),
			Email:   fmt.Sprintf("%s.%d@example.com", word(), i),
			Active:  rng.IntN(2) == 0,
			Balance: float64(rng.IntN(10_000_000)) / 100,
			Address: address{Street: fmt.Sprintf("%d %s street", rng.IntN(999), word()), City: word(),
				Zip: fmt.Sprintf("%05d", rng.IntN(100000)), Geo: [2]float64{rng.Float64()*180 - 90, rng.Float64()*360 - 180}},
			Settings: map[string]any{"theme": word(), "notifications": rng.IntN(2) == 0, "limit": rng.IntN(100)},
		}
		for range 1 + rng.IntN(4) {
			u.Tags = append(u.Tags, word())
		}
		for range rng.IntN(6) {
			u.Friends = append(u.Friends, rng.IntN(n))
		}
		if i > 0 && rng.IntN(3) > 0 {
			m := rng.IntN(i)
			u.Manager = &m
		}
		users[i] = u
	}
	b, err := json.MarshalIndent(map[string]any{"version": 1, "users": users}, "", " ")
	if err != nil {
		panic(err)
	}
	return b
}
