package server

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/testwasm"
	"github.com/thaw-run/thaw/internal/worker"
)

// documentedFields reads the configuration table of docs/api.md.
func documentedFields(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testwasm.Root(), "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| `--").FindAllSubmatch(b, -1) {
		names = append(names, string(m[1]))
	}
	if len(names) == 0 {
		t.Fatal("docs/api.md has no configuration table")
	}
	return names
}

// validSamples holds a valid value of every field, as a query parameter
// and as JSON.
var validSamples = map[string][2]string{"memory_mib": {"64", "64"}, "timeout": {"2s", `"2s"`}, "init_timeout": {"90", "90"},
	"min_instances": {"1", "1"}, "max_instances": {"3", "3"}, "max_queue": {"5", "5"}, "keep_alive": {"10s", `"10s"`},
	"public": {"true", "true"}, "restore_mode": {"eager", `"eager"`}, "policy": {"fixed:2", `"fixed:2"`},
	"pool_size": {"4", "4"}, "rerecord_miss_rate": {"0.5", "0.5"}, "engine": {"wazero", `"wazero"`}, "idempotent": {"true", "true"}}

// Every field docs/api.md documents is accepted as a query parameter and
// passes the worker's checks, and the documentation lists every field
// there is.
func TestQueryAcceptsEveryDocumentedField(t *testing.T) {
	documented := map[string]bool{}
	for _, name := range documentedFields(t) {
		documented[name] = true
		v, ok := validSamples[name]
		if !ok {
			t.Errorf("documented field %s has no sample value in this test", name)
			continue
		}
		var cfg api.Config
		if err := cfg.SetQuery(url.Values{name: {v[0]}}); err != nil {
			t.Errorf("query %s=%s: %v", name, v[0], err)
			continue
		}
		if err := worker.Config(cfg).WithDefaults().Validate(); err != nil {
			t.Errorf("query %s=%s: %v", name, v[0], err)
		}
		if cfg == (api.Config{}) {
			t.Errorf("query %s=%s set nothing", name, v[0])
		}
	}
	for _, f := range api.Fields {
		if !documented[f.Name] {
			t.Errorf("field %s is not documented in docs/api.md", f.Name)
		}
	}
}

// A deploy over HTTP with every field as a query parameter hands the
// worker the configuration a deploy with the same values as the
// X-Thaw-Config header does, and answers with it.
func TestDeployQueryEqualsJSON(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	q := url.Values{}
	var js []string
	for _, f := range api.Fields {
		v, ok := validSamples[f.Name]
		if !ok {
			t.Fatalf("field %s has no sample value in this test", f.Name)
		}
		q.Set(f.Name, v[0])
		js = append(js, `"`+f.Name+`": `+v[1])
	}
	fb := newFake()
	ts := newTestServer(t, fb, Options{})
	deploy := func(path string, hdr map[string]string) (worker.Config, api.FunctionInfo) {
		t.Helper()
		hdr["Content-Type"] = "application/wasm"
		resp, b := do(t, "PUT", ts.URL+path, bytes.NewReader(wasm), hdr)
		if resp.StatusCode != 200 {
			t.Fatalf("PUT %s: %d %s", path, resp.StatusCode, b)
		}
		var info api.FunctionInfo
		if err := json.Unmarshal(b, &info); err != nil {
			t.Fatal(err)
		}
		return fb.lastCfg, info
	}
	fromQuery, queryInfo := deploy("/v1/functions/q?"+q.Encode(), map[string]string{})
	fromJSON, jsonInfo := deploy("/v1/functions/j", map[string]string{api.HeaderConfig: "{" + strings.Join(js, ", ") + "}"})
	if fromQuery != fromJSON {
		t.Errorf("query gave the worker %+v, JSON %+v", fromQuery, fromJSON)
	}
	if err := fromQuery.WithDefaults().Validate(); err != nil {
		t.Errorf("every field set: %v", err)
	}
	if queryInfo.Config != jsonInfo.Config || queryInfo.Config != api.Config(fromQuery) {
		t.Errorf("answered %+v and %+v, want %+v", queryInfo.Config, jsonInfo.Config, fromQuery)
	}
	if fromQuery.InitTimeout == 0 || fromQuery.Policy == "" || fromQuery.PoolSize == 0 {
		t.Errorf("init_timeout, policy or pool_size not set: %+v", fromQuery)
	}
	resp, b := do(t, "PUT", ts.URL+"/v1/functions/u?memory=1", bytes.NewReader(wasm), map[string]string{"Content-Type": "application/wasm"})
	var eb api.ErrorBody
	if resp.StatusCode != 400 || json.Unmarshal(b, &eb) != nil || !strings.Contains(eb.Error, "unknown parameter") {
		t.Errorf("unknown parameter: %d %s", resp.StatusCode, b)
	}
}
