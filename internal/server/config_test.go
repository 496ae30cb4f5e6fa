package server

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
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

var validSamples = map[string]string{"memory_mib": "64", "timeout": "2s", "init_timeout": "90", "min_instances": "1",
	"max_instances": "3", "max_queue": "5", "keep_alive": "10s", "public": "true", "restore_mode": "eager",
	"policy": "fixed:2", "pool_size": "4", "rerecord_miss_rate": "0.5"}

// Every field docs/api.md documents is accepted as a query parameter, and
// the documentation lists every field there is.
func TestQueryAcceptsEveryDocumentedField(t *testing.T) {
	documented := map[string]bool{}
	for _, name := range documentedFields(t) {
		documented[name] = true
		v, ok := validSamples[name]
		if !ok {
			t.Errorf("documented field %s has no sample value in this test", name)
			continue
		}
		var cfg worker.Config
		if err := configFromQuery(url.Values{name: {v}}, &cfg); err != nil {
			t.Errorf("query %s=%s: %v", name, v, err)
			continue
		}
		if err := cfg.WithDefaults().Validate(); err != nil {
			t.Errorf("query %s=%s: %v", name, v, err)
		}
		if cfg == (worker.Config{}) {
			t.Errorf("query %s=%s set nothing", name, v)
		}
	}
	for _, f := range worker.Fields {
		if !documented[f.Name] {
			t.Errorf("field %s is not documented in docs/api.md", f.Name)
		}
	}
	var cfg worker.Config
	if err := configFromQuery(url.Values{"memory": {"1"}}, &cfg); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("unknown parameter: %v", err)
	}
}
