package main

import (
	"fmt"
	"net/http"
)

// Handler greets the caller by the name in ?name= (default "world") and
// echoes the request's method and path.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			name = "world"
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "hello, %s (%s %s)\n", name, r.Method, r.URL.Path)
	})
}
