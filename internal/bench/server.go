package bench

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/thaw-run/thaw/internal/server"
	"github.com/thaw-run/thaw/internal/worker"
)

// StartServer starts the private thaw server of a benchmark or the demo:
// a worker in dataDir served on a free loopback port with the server's
// default limits and no token, its compilation cache shared across runs
// (ShareCompilationCache), its guests on the engine engineName ("": the
// default). Close stops it.
func StartServer(ctx context.Context, dataDir, engineName string, log *slog.Logger) (*server.Running, error) {
	ShareCompilationCache(dataDir)
	return server.Start(ctx, server.RunOptions{
		Addr: "127.0.0.1:0",
		// No region pool: what these servers have always measured (a
		// zero --region-pool-mib of `thaw serve`).
		Worker: worker.Options{DataDir: dataDir, Logger: log, RegionPoolMiB: -1, Engine: engineName},
		Server: server.Options{MaxBody: server.DefaultMaxBody, MaxModule: server.DefaultMaxModule},
	})
}

// ShareCompilationCache points dataDir's compilation cache at one kept
// across runs in the user's cache directory, so that a second run skips
// compiling the modules. Failing to set it up only costs time.
func ShareCompilationCache(dataDir string) {
	base, err := os.UserCacheDir()
	if err != nil {
		return
	}
	cache := filepath.Join(base, "thaw", "demo-compilation-cache")
	if os.MkdirAll(cache, 0o755) != nil || os.MkdirAll(dataDir, 0o700) != nil {
		return
	}
	_ = os.Symlink(cache, filepath.Join(dataDir, "cache"))
}
