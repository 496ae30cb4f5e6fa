// Package wfn holds the HTTP helpers shared by the warm-up functions (the
// suite has its own copy under examples/suite/internal/fn: Go's internal
// rule keeps the two trees from sharing one package).
package wfn

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// JSON writes v as a JSON response with status 200.
func JSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		Error(w, http.StatusInternalServerError, "encode response: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// Error writes {"error": msg} with the given status.
func Error(w http.ResponseWriter, status int, format string, args ...any) {
	b, _ := json.Marshal(map[string]string{"error": fmt.Sprintf(format, args...)})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Methods reports whether r uses GET or POST, answering 405 otherwise.
func Methods(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", "GET, POST")
	Error(w, http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	return false
}

// Int returns the integer query parameter name, def when it is absent; a
// value that does not parse or lies outside [lo, hi] is an error.
func Int(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("parameter %s=%q is not an integer", name, s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("parameter %s=%d is outside [%d, %d]", name, v, lo, hi)
	}
	return v, nil
}

// Digest returns the hex SHA-256 of b.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
