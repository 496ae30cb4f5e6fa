package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
)

// Page is what report.html shows.
type Page struct {
	Meta    Meta
	Rows    []Row
	Figures []Figure
	// Notes are paragraphs shown under the title (what was run, caveats).
	Notes []string
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Meta.Title}}</title>
<style>
body { font-family: sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f2f2f2; }
figure { margin: 2em 0; }
figure img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
.attribution { font-size: 0.9em; color: #555; border-left: 3px solid #999; padding-left: 0.8em; }
</style>
</head>
<body>
<h1>{{.Meta.Title}}</h1>
{{range .Notes}}<p>{{.}}</p>
{{end}}
{{- if .Meta.Attribution}}<p class="attribution">{{.Meta.Attribution}}</p>
{{end}}
<h2>Summary</h2>
<table id="summary">
<thead><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Cells}}<tr>{{range $i, $c := .}}<td{{if ge $i 2}} class="n"{{end}}>{{$c}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
<p>Raw numbers: <a href="summary.json">summary.json</a>{{range .Links}}, <a href="{{.}}">{{.}}</a>{{end}}.</p>
<h2>Plots</h2>
{{range .Figures}}<figure id="{{.Name}}">
<a href="{{.Name}}.svg"><img src="{{.Name}}.png" alt="{{.Title}}"></a>
<figcaption><b>{{.Title}}.</b> {{.Caption}} (<a href="{{.Name}}.svg">SVG</a>)</figcaption>
</figure>
{{end}}
<h2>Run</h2>
<table id="meta">
<tr><th>started</th><td>{{.Meta.Started.Format "2006-01-02 15:04:05 MST"}}</td></tr>
<tr><th>machine</th><td>{{.Meta.Machine.CPUModel}}, {{.Meta.Machine.Cores}} cores, {{.MemGiB}} GiB, Linux {{.Meta.Machine.Kernel}} ({{.Meta.Machine.OS}}/{{.Meta.Machine.Arch}})</td></tr>
<tr><th>Go</th><td>{{.Meta.GoVersion}}</td></tr>
<tr><th>commit</th><td>{{with .Meta.GitCommit}}{{.}}{{else}}unknown{{end}}{{if .Meta.GitModified}} (modified){{end}}</td></tr>
<tr><th>seed</th><td>{{.Meta.Seed}}</td></tr>
</table>
<h3>Configuration</h3>
<pre>{{.Config}}</pre>
</body>
</html>
`))

// WriteHTML writes dir/report.html. It refers to the figures' PNG and SVG
// files next to it and to any other files of the run directory in links.
func WriteHTML(dir string, pg Page, links ...string) error {
	head, cells := TableColumns(pg.Rows)
	cfg, err := json.MarshalIndent(pg.Meta.Config, "", "  ")
	if err != nil {
		return fmt.Errorf("report: encoding configuration: %w", err)
	}
	data := struct {
		Page
		Head   []string
		Cells  [][]string
		Links  []string
		Config string
		MemGiB string
	}{pg, head, cells, links, string(cfg), fmt.Sprintf("%.1f", float64(pg.Meta.Machine.MemoryBytes)/(1<<30))}
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := page.Execute(f, data); err != nil {
		f.Close()
		return fmt.Errorf("report: rendering report.html: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
