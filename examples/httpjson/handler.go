package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// maxBody bounds a request's JSON; the platform bounds bodies too, but a
// function should not trust that.
const maxBody = 1 << 20

// Stats is what POST /stats answers for a list of numbers.
type Stats struct {
	Count int     `json:"count"`
	Sum   float64 `json:"sum"`
	Mean  float64 `json:"mean"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
}

// Handler routes a small JSON API with the standard library's patterns:
//
//	GET  /hello/{name}  {"message": "hello, NAME"}
//	POST /stats         {"numbers": [1, 2.5]} -> Stats (400 if the list is empty)
//
// Errors are JSON too ({"error": "..."}); an unknown path is a 404 and a
// known one with another method a 405, both from http.ServeMux.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]string{"message": "hello, " + r.PathValue("name")})
	})
	mux.HandleFunc("POST /stats", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Numbers []float64 `json:"numbers"`
		}
		if err := decode(w, r, &in); err != nil {
			reply(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if len(in.Numbers) == 0 {
			reply(w, http.StatusBadRequest, map[string]string{"error": "numbers: want at least one"})
			return
		}
		s := Stats{Count: len(in.Numbers), Min: in.Numbers[0], Max: in.Numbers[0]}
		for _, x := range in.Numbers {
			s.Sum += x
			s.Min, s.Max = min(s.Min, x), max(s.Max, x)
		}
		s.Mean = s.Sum / float64(s.Count)
		reply(w, http.StatusOK, s)
	})
	return mux
}

// decode reads one JSON object into v, refusing unknown fields, trailing
// data and bodies over maxBody.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	if dec.More() {
		return errors.New("bad JSON: trailing data after the object")
	}
	return nil
}

// reply writes v as JSON with the status code.
func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the status is sent: nothing left to report to
}
