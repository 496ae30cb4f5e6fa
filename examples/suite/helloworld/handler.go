package main

import (
	"net/http"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// Handler greets ?name= (default "world"). It does no work at all, so its
// latency is the platform's overhead.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		name := r.URL.Query().Get("name")
		if name == "" {
			name = "world"
		}
		if len(name) > 256 {
			fn.Error(w, http.StatusBadRequest, "name is longer than 256 bytes")
			return
		}
		fn.JSON(w, map[string]string{"message": "Hello, " + name + "!"})
	})
}
