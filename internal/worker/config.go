package worker

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/policy"
	"github.com/thaw-run/thaw/internal/restore"
)

// Config is a function's deployment configuration as the worker checks,
// holds and persists it (in the registry record, as JSON): the wire form
// api.Config, which owns the fields, their names and their defaults, with
// the worker's checks (Validate). Convert with Config(c) and api.Config(c).
type Config api.Config

// WithDefaults returns c with every zero field set to its default
// (api.Config.WithDefaults).
func (c Config) WithDefaults() Config { return Config(api.Config(c).WithDefaults()) }

// mode is c's restore mode as the restore package names it.
func (c Config) mode() restore.Mode { return restore.Mode(c.RestoreMode) }

// Upper bounds of Config's fields. They keep a typo (an extra zero, a
// unit mix-up) from becoming an instance that never times out or a pool
// the worker cannot hold; the memory budget (if any) bounds what fits.
const (
	maxMemoryMiB    = 4096
	maxTimeout      = time.Hour
	maxKeepAlive    = 7 * 24 * time.Hour
	maxInstancesCap = 1024
	maxQueueCap     = 100000
	maxPoolSize     = 64
	maxMissRate     = 100.0
)

// check reports whether one field of a Config (after WithDefaults) is
// valid; name is the field's JSON name.
type check func(name string, c Config) error

func intIn(get func(Config) int, lo, hi int) check {
	return func(name string, c Config) error {
		if n := get(c); n < lo || n > hi {
			return fmt.Errorf("%s %d outside %d..%d", name, n, lo, hi)
		}
		return nil
	}
}

func durationIn(get func(Config) api.Duration, lo, hi time.Duration) check {
	return func(name string, c Config) error {
		if d := time.Duration(get(c)); d < lo || d > hi {
			return fmt.Errorf("%s %s outside %s..%s", name, d, lo, hi)
		}
		return nil
	}
}

// checks holds the check of every field of api.Fields, by JSON name (a
// test holds them to api.Fields).
var checks = map[string]check{
	"memory_mib":    intIn(func(c Config) int { return c.MemoryMiB }, 1, maxMemoryMiB),
	"timeout":       durationIn(func(c Config) api.Duration { return c.Timeout }, time.Millisecond, maxTimeout),
	"init_timeout":  durationIn(func(c Config) api.Duration { return c.InitTimeout }, time.Millisecond, maxTimeout),
	"min_instances": intIn(func(c Config) int { return c.MinInstances }, 0, maxInstancesCap),
	"max_instances": intIn(func(c Config) int { return c.MaxInstances }, 1, maxInstancesCap),
	"max_queue":     intIn(func(c Config) int { return c.MaxQueue }, 0, maxQueueCap),
	"keep_alive":    durationIn(func(c Config) api.Duration { return c.KeepAlive }, 0, maxKeepAlive),
	"public":        func(string, Config) error { return nil },
	"idempotent":    func(string, Config) error { return nil },
	"restore_mode": func(name string, c Config) error {
		if m, err := restore.ParseMode(string(c.RestoreMode)); err != nil || m == restore.Warm {
			return fmt.Errorf("%s %q is not one of cold, eager, mmap, lazy, reap, bulk", name, c.RestoreMode)
		}
		return nil
	},
	"policy": func(name string, c Config) error {
		if _, err := policy.Parse(c.Policy, 1); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		return nil
	},
	"engine": func(name string, c Config) error {
		if c.Engine != "" && !slices.Contains(engine.Known, c.Engine) {
			return fmt.Errorf("%s %q is not one of %s", name, c.Engine, strings.Join(engine.Known, ", "))
		}
		return nil
	},
	"pool_size": intIn(func(c Config) int { return c.PoolSize }, 1, maxPoolSize),
	"rerecord_miss_rate": func(name string, c Config) error {
		// Written so that NaN fails too.
		if x := c.RerecordMissRate; !(x > 0 && x <= maxMissRate) {
			return fmt.Errorf("%s %v outside (0, %g]", name, x, maxMissRate)
		}
		return nil
	},
}

// Validate reports the first invalid field (of c after WithDefaults, as
// deployed), in api.Fields' order, wrapped in errdefs.ErrInvalid.
func (c Config) Validate() error {
	for _, f := range api.Fields {
		chk, ok := checks[f.Name]
		if !ok {
			// A bug (TestChecksCoverFields), not the caller's fault.
			return fmt.Errorf("config: field %s has no check", f.Name)
		}
		if err := chk(f.Name, c); err != nil {
			return fmt.Errorf("config: %v: %w", err, errdefs.ErrInvalid)
		}
	}
	if c.MinInstances > c.MaxInstances {
		return fmt.Errorf("config: min_instances (%d) exceeds max_instances (%d): %w", c.MinInstances, c.MaxInstances, errdefs.ErrInvalid)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidName checks a function name: lower-case letters, digits, '-' and '_',
// at most 63 characters, so it is safe as a path element and a URL segment.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("function name %q: want [a-z0-9][a-z0-9_-]{0,62}: %w", name, errdefs.ErrInvalid)
	}
	return nil
}
