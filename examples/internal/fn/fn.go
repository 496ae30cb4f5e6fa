// Package fn holds the small HTTP helpers shared by the suite's functions:
// JSON responses, error responses and bounded query parameters. Keeping them
// in one place makes every function answer bad input the same way (a 4xx
// with a JSON error) so benchmarks and tests can rely on it.
package fn

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// MaxBody bounds request bodies read by Body: the suite's inputs are small
// and a bound keeps a misbehaving client from exhausting guest memory.
const MaxBody = 8 << 20

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

// Methods reports whether r uses one of the allowed methods, answering 405
// itself when it does not.
func Methods(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for _, m := range allowed {
		if r.Method == m {
			return true
		}
	}
	for _, m := range allowed {
		w.Header().Add("Allow", m)
	}
	Error(w, http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	return false
}

// Int returns the integer query parameter name, def when it is absent. A
// value that does not parse or lies outside [lo, hi] is an error whose text
// is fit for a 400 response.
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

// Float returns the float query parameter name, def when it is absent, with
// the same rules as Int.
func Float(r *http.Request, name string, def, lo, hi float64) (float64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("parameter %s=%q is not a number", name, s)
	}
	if !(v >= lo && v <= hi) { // also rejects NaN
		return 0, fmt.Errorf("parameter %s=%v is outside [%v, %v]", name, v, lo, hi)
	}
	return v, nil
}

// Body reads the request body, at most MaxBody bytes. A GET has no body.
func Body(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(b) > MaxBody {
		return nil, fmt.Errorf("body exceeds %d bytes", MaxBody)
	}
	return b, nil
}

// Digest returns the hex SHA-256 of b: functions report it instead of large
// outputs so responses stay small yet still pin the output exactly.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
