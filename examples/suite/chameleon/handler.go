package main

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// bigTable is the Chameleon "big table" benchmark template in Go's
// html/template dialect: one <tr> per row, one escaped <td> per cell.
const bigTable = `<!DOCTYPE html>
<html><head><title>{{.Title}}</title></head>
<body>
<table>
{{- range $i, $row := .Rows}}
<tr class="{{if even $i}}even{{else}}odd{{end}}">{{range $row}}<td>{{.}}</td>{{end}}</tr>
{{- end}}
</table>
</body></html>
`

// page is parsed once at init, as the Python original builds its template
// at import time: requests pay only for execution.
var page = template.Must(template.New("bigtable").Funcs(template.FuncMap{
	"even": func(i int) bool { return i%2 == 0 },
}).Parse(bigTable))

// Limits on the generated table, so one request cannot exhaust memory.
const (
	maxRows = 5000
	maxCols = 100
)

// result is chameleon's JSON answer; ?format=html returns the page itself.
type result struct {
	Rows   int    `json:"rows"`
	Cols   int    `json:"cols"`
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Handler renders an HTML table. GET ?rows=&cols= (defaults 200 x 10)
// generates the cells, which need escaping ("<cell r,c>"); POST takes the
// rows as a JSON array of arrays of strings.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		var rows [][]string
		if r.Method == http.MethodPost {
			body, err := fn.Body(r)
			if err != nil {
				fn.Error(w, http.StatusRequestEntityTooLarge, "%v", err)
				return
			}
			if err := json.Unmarshal(body, &rows); err != nil {
				fn.Error(w, http.StatusBadRequest, "body must be a JSON array of arrays of strings: %v", err)
				return
			}
			if len(rows) > maxRows {
				fn.Error(w, http.StatusBadRequest, "more than %d rows", maxRows)
				return
			}
		} else {
			nr, err := fn.Int(r, "rows", 200, 1, maxRows)
			if err != nil {
				fn.Error(w, http.StatusBadRequest, "%v", err)
				return
			}
			nc, err := fn.Int(r, "cols", 10, 1, maxCols)
			if err != nil {
				fn.Error(w, http.StatusBadRequest, "%v", err)
				return
			}
			rows = generate(nr, nc)
		}
		var buf bytes.Buffer
		if err := page.Execute(&buf, map[string]any{"Title": "chameleon", "Rows": rows}); err != nil {
			fn.Error(w, http.StatusInternalServerError, "render: %v", err)
			return
		}
		if r.URL.Query().Get("format") == "html" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(buf.Bytes())
			return
		}
		cols := 0
		if len(rows) > 0 {
			cols = len(rows[0])
		}
		fn.JSON(w, result{Rows: len(rows), Cols: cols, Bytes: buf.Len(), SHA256: fn.Digest(buf.Bytes())})
	})
}

// generate builds an nr x nc table whose cells need HTML escaping, so the
// template's escaper does real work.
func generate(nr, nc int) [][]string {
	rows := make([][]string, nr)
	for i := range rows {
		row := make([]string, nc)
		for j := range row {
			row[j] = "<cell " + strconv.Itoa(i) + "," + strconv.Itoa(j) + "> & \"q\""
		}
		rows[i] = row
	}
	return rows
}
