package main

import (
	"bytes"
	"fmt"
	"html/template"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// numTemplates is M, the number of distinct page templates.
const numTemplates = 200

// funcs are the helpers every template may call.
var funcs = template.FuncMap{
	"price": func(cents int) string { return fmt.Sprintf("$%d.%02d", cents/100, cents%100) },
	"upper": strings.ToUpper,
	"add":   func(a, b int) int { return a + b },
}

// source returns template i's text: a catalogue page with 6 to 13
// sections, each a defined sub-template. The first section lists the items;
// the others are navigation blocks, mostly static HTML with inline styles,
// event handlers and scripts, and few actions. html/template's contextual
// escaper runs every static byte through its HTML, CSS and JavaScript
// state machines once, when the template is first executed, while later
// executions only copy the text: compiling costs several times what one
// execution does, as in real sites whose templates are large and whose
// data is small.
func source(i int) string {
	var b strings.Builder
	sections := 6 + i%8
	fmt.Fprintf(&b, `{{define "sec-%d-0"}}
<section id="items-%d">
  {{- range $j, $it := .Items}}
  <div class="item{{if $it.Sale}} sale{{end}}" data-id="{{$it.ID}}">
    <a href="/item/{{$it.ID}}?ref={{$.Title}}">{{$it.Name}}</a>
    <span>{{price $it.Cents}}</span>{{with $it.Note}}<em>{{.}}</em>{{else}}<em>-</em>{{end}}
    <button onclick="buy({{$it.ID}}, {{$it.Name}})">buy #{{add $j 1}}</button>
    <ul>{{range $it.Tags}}<li>{{.}}</li>{{end}}</ul>
  </div>{{end}}
</section>{{end}}
`, i, i)
	for s := 1; s < sections; s++ {
		fmt.Fprintf(&b, `{{define "sec-%d-%d"}}
<nav id="s%d-%d" style="color: {{.Color}}; margin: %dpx; border-color: {{.Color}}">
  <h2 title="{{.Title}} %d">{{upper .Title}} / section %d</h2>
`, i, s, i, s, s, i, s)
		for l := range 8 {
			fmt.Fprintf(&b, `  <a href="/c/%d/%d/%d" class="nav nav-%d" style="background: #fff; padding: %dpx" onclick="track('nav', %d, %d, {x: %d})">static link %d of section %d</a>
  <script>window.nav%d_%d_%d = {id: %d, label: "link %d", tags: ["a", "b", "c"]};</script>
`, i, s, l, l, l, s, l, l, l, s, i, s, l, l, l)
		}
		b.WriteString(`  <span>{{.Title}}</span>` + "\n")
		b.WriteString("</nav>{{end}}\n")
	}
	fmt.Fprintf(&b, `<!DOCTYPE html><html><head><title>{{.Title}} (%d)</title>
<script>var page = {{.Title}}; var n = {{len .Items}};</script></head><body>
`, i)
	for s := range sections {
		fmt.Fprintf(&b, "{{template \"sec-%d-%d\" .}}\n", i, s)
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

// item and page are the data the templates render.
type item struct {
	ID    int
	Name  string
	Cents int
	Sale  bool
	Note  string
	Tags  []string
}

type page struct {
	Title string
	Color string
	Items []item
}

// data returns the page for template t with n items, from a seed.
func data(t, n int) page {
	rng := rand.New(rand.NewPCG(uint64(t), uint64(n)))
	p := page{Title: fmt.Sprintf("Catalogue <%d> & more", t), Color: []string{"red", "#336699", "black"}[t%3]}
	for j := range n {
		it := item{ID: rng.IntN(100000), Name: fmt.Sprintf("Widget \"%d\"", j), Cents: rng.IntN(100000), Sale: rng.IntN(4) == 0}
		if rng.IntN(2) == 0 {
			it.Note = "ships <soon>"
		}
		for range 1 + rng.IntN(3) {
			it.Tags = append(it.Tags, fmt.Sprintf("t%d", rng.IntN(3)))
		}
		p.Items = append(p.Items, it)
	}
	return p
}

// pick returns the template request k uses. Round-robin (k mod M) makes
// every one of the first M requests a miss and every later one a hit: a
// single step. The default draws from a Zipf distribution seeded by k
// instead, as page popularity is skewed: popular templates are compiled
// early, rare ones keep trickling in, and latency falls gradually.
func pick(k int, roundRobin bool) int {
	if roundRobin {
		return k % numTemplates
	}
	rng := rand.New(rand.NewPCG(uint64(k), 0x7e))
	return int(rand.NewZipf(rng, 1.1, 4, numTemplates-1).Uint64())
}

// result is the templates function's JSON answer.
type result struct {
	K        int    `json:"k"`
	Template int    `json:"template"`
	Bytes    int    `json:"bytes"`
	SHA256   string `json:"sha256"`
}

// Handler renders page template pick(k) with ?items= items (default 5).
// k is ?k= when given, else the instance's request count (1, 2, ...):
// without ?k= the template, and so the response, depends on how many
// requests the instance has served; send ?k= for reproducible answers.
// ?order=roundrobin picks template k mod M. Each template is parsed on its
// first use and kept; html/template escapes it on its first execution.
func Handler() http.Handler {
	var (
		mu       sync.Mutex
		count    int
		compiled = make(map[int]*template.Template)
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		n, err := fn.Int(r, "items", 5, 0, 1000)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		order := r.URL.Query().Get("order")
		if order != "" && order != "zipf" && order != "roundrobin" {
			fn.Error(w, http.StatusBadRequest, "order must be zipf or roundrobin, not %q", order)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		count++
		k, err := fn.Int(r, "k", count, 0, 1<<40)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		t := pick(k, order == "roundrobin")
		tmpl := compiled[t]
		if tmpl == nil {
			if tmpl, err = template.New(fmt.Sprint("page-", t)).Funcs(funcs).Parse(source(t)); err != nil {
				fn.Error(w, http.StatusInternalServerError, "parse template %d: %v", t, err)
				return
			}
			compiled[t] = tmpl
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, data(t, n)); err != nil {
			fn.Error(w, http.StatusInternalServerError, "render template %d: %v", t, err)
			return
		}
		fn.JSON(w, result{K: k, Template: t, Bytes: buf.Len(), SHA256: fn.Digest(buf.Bytes())})
	})
}
