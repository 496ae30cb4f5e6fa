package suite

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/thaw-run/thaw/internal/build"
)

// Build compiles every function of fns from the repository at root into
// dir and returns the modules by name. Builds run one at a time: the Go
// toolchain already uses every core for one package.
func Build(ctx context.Context, root, dir string, fns []Function, log io.Writer) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, f := range fns {
		t0 := time.Now()
		path := filepath.Join(dir, f.Name+".wasm")
		if err := build.Module(ctx, filepath.Join(root, f.Dir), path); err != nil {
			return nil, fmt.Errorf("suite: %w", err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("suite: %w", err)
		}
		out[f.Name] = b
		if log != nil {
			fmt.Fprintf(log, "built %s (%.1f MiB) in %.1fs\n", f.Dir, float64(len(b))/(1<<20), time.Since(t0).Seconds())
		}
	}
	return out, nil
}
