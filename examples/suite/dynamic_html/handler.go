package main

import (
	"bytes"
	"hash/fnv"
	"html/template"
	"math/rand/v2"
	"net/http"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// pageTemplate is SeBS dynamic-html's template.html in html/template form.
const pageTemplate = `<!DOCTYPE html>
<html>
  <head>
    <title>Randomly generated data.</title>
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <style type="text/css">body { margin-top: 50px; } ul { list-style: none; }</style>
  </head>
  <body>
    <div class="container">
      <p>Welcome {{.Username}}!</p>
      <p>Data generated at: {{.Time}}!</p>
      <p>Requested random numbers:</p>
      <ul>
        {{- range .Numbers}}
        <li>{{.}}</li>
        {{- end}}
      </ul>
    </div>
  </body>
</html>
`

var page = template.Must(template.New("dynamic-html").Parse(pageTemplate))

// result is dynamic_html's JSON answer; ?format=html returns the page.
type result struct {
	Username string `json:"username"`
	Numbers  int    `json:"numbers"`
	Sum      int64  `json:"sum"`
	Bytes    int    `json:"bytes"`
	SHA256   string `json:"sha256"`
}

// Handler renders a page greeting ?username= (default "thaw") with
// ?random_len= (default 1000) random numbers below one million, as SeBS
// does. The numbers come from a generator seeded by the username and
// ?seed=, and the page's time is ?time= (default a fixed date): the same
// request always renders the same page.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		q := r.URL.Query()
		user := q.Get("username")
		if user == "" {
			user = "thaw"
		}
		if len(user) > 256 {
			fn.Error(w, http.StatusBadRequest, "username is longer than 256 bytes")
			return
		}
		n, err := fn.Int(r, "random_len", 1000, 0, 100_000)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		seed, err := fn.Int(r, "seed", 0, 0, 1<<31)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		at := q.Get("time")
		if at == "" {
			at = "2026-01-01 00:00:00"
		}
		h := fnv.New64a()
		h.Write([]byte(user))
		rng := rand.New(rand.NewPCG(h.Sum64(), uint64(seed)))
		nums := make([]int, n)
		var sum int64
		for i := range nums {
			nums[i] = rng.IntN(1_000_000)
			sum += int64(nums[i])
		}
		var buf bytes.Buffer
		if err := page.Execute(&buf, map[string]any{"Username": user, "Time": at, "Numbers": nums}); err != nil {
			fn.Error(w, http.StatusInternalServerError, "render: %v", err)
			return
		}
		if q.Get("format") == "html" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(buf.Bytes())
			return
		}
		fn.JSON(w, result{Username: user, Numbers: n, Sum: sum, Bytes: buf.Len(), SHA256: fn.Digest(buf.Bytes())})
	})
}
