// Package suite orchestrates a benchmark-suite run: every suite function
// against every restore mode, repeated trials, measured end to end over
// HTTP against a real thaw server.
//
// A run is: validate a Config (Config.Validate, before anything is built or
// started), build the functions' modules (Build), deploy them and measure
// them with Run against anything that deploys and invokes (a
// *api.Client in practice), then write the run directory with WriteRun.
// `thaw bench suite` is that sequence with a private in-process server.
//
// # Why over HTTP
//
// The figure a user sees is the time from sending a request to reading the
// answer, so that is what each trial records. The stage breakdown comes
// from the Server-Timing header the server writes on the same response, so
// both views come from one invocation and cannot drift apart.
package suite

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/thaw-run/thaw/internal/catalog"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
)

// Function is a suite function: where its source lives and the request
// each trial sends.
type Function struct {
	// Name is the function's deployed name.
	Name string
	// Dir is the package directory relative to the repository root.
	Dir string
	// Method defaults to GET; Path (with an optional query) to "/".
	Method string
	Path   string
	Body   []byte
	// MemoryMiB overrides the default memory cap when non-zero.
	MemoryMiB int
}

// Catalog lists the suite functions (examples/suite) with their default
// requests and memory caps, taken from internal/catalog so that every
// benchmark sends the same request to the same function.
var Catalog = fromCatalog()

func fromCatalog() []Function {
	var out []Function
	for _, f := range catalog.ByKind(catalog.Suite) {
		out = append(out, Function{Name: f.Name, Dir: f.Dir, Method: f.Request.Method, Path: f.Request.Target,
			Body: f.Request.Body, MemoryMiB: f.MemoryMiB})
	}
	return out
}

// Lookup returns the catalog entry named name.
func Lookup(name string) (Function, bool) {
	i := slices.IndexFunc(Catalog, func(f Function) bool { return f.Name == name })
	if i < 0 {
		return Function{}, false
	}
	return Catalog[i], true
}

// Available returns the catalog functions whose source exists under the
// repository root, in catalog order: the default set of a run, so that a
// checkout without some examples still runs the rest.
func Available(root string) []Function {
	var out []Function
	for _, f := range Catalog {
		if st, err := os.Stat(filepath.Join(root, f.Dir)); err == nil && st.IsDir() {
			out = append(out, f)
		}
	}
	return out
}

// DefaultModes are the modes a run measures unless told otherwise: a cold
// boot, every restore mode that matters for the paper comparison, and a
// warm call as the floor. Eager is left out because mmap supersedes it.
var DefaultModes = []restore.Mode{restore.Cold, restore.Mmap, restore.Lazy, restore.Reap, restore.Bulk, restore.Warm}

// Config is what a run measures, as the command line gives it.
type Config struct {
	// Functions are catalog names; empty means every available function.
	Functions []string `json:"functions"`
	// Modes are restore mode names; empty means DefaultModes.
	Modes []string `json:"modes"`
	// Trials per function and mode.
	Trials int `json:"trials"`
	// Seed shuffles the order of modes within each round of trials.
	Seed uint64 `json:"seed"`
}

// Plan is a validated Config: the functions and modes to run.
type Plan struct {
	Functions []Function
	Modes     []restore.Mode
	Trials    int
	Seed      uint64
}

// Validate checks c against the catalog and returns the plan. Every error
// is in the errdefs.ErrInvalid category, and nothing is built or started,
// so bad flags fail in milliseconds. root is the repository root used to
// find the available functions when c names none.
func (c Config) Validate(root string) (Plan, error) {
	p := Plan{Trials: c.Trials, Seed: c.Seed}
	if c.Trials < 1 {
		return p, fmt.Errorf("trials must be at least 1, got %d: %w", c.Trials, errdefs.ErrInvalid)
	}
	if len(c.Modes) == 0 {
		p.Modes = slices.Clone(DefaultModes)
	}
	for _, m := range c.Modes {
		mode, err := restore.ParseMode(strings.TrimSpace(m))
		if err != nil {
			return p, err
		}
		if slices.Contains(p.Modes, mode) {
			return p, fmt.Errorf("mode %q given twice: %w", m, errdefs.ErrInvalid)
		}
		p.Modes = append(p.Modes, mode)
	}
	if len(c.Functions) == 0 {
		p.Functions = Available(root)
		if len(p.Functions) == 0 {
			return p, fmt.Errorf("no suite functions under %s: %w", root, errdefs.ErrInvalid)
		}
		return p, nil
	}
	for _, name := range c.Functions {
		f, ok := Lookup(strings.TrimSpace(name))
		if !ok {
			return p, fmt.Errorf("unknown function %q (known: %s): %w", name, strings.Join(Names(), ", "), errdefs.ErrInvalid)
		}
		if slices.ContainsFunc(p.Functions, func(g Function) bool { return g.Name == f.Name }) {
			return p, fmt.Errorf("function %q given twice: %w", name, errdefs.ErrInvalid)
		}
		p.Functions = append(p.Functions, f)
	}
	return p, nil
}

// Names returns the catalog's function names.
func Names() []string {
	out := make([]string, len(Catalog))
	for i, f := range Catalog {
		out[i] = f.Name
	}
	return out
}
