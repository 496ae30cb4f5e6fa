package worker

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/policy"
	"github.com/thaw-run/thaw/internal/restore"
)

// Duration is a time.Duration that reads and writes JSON as "30s".
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler; it accepts "1m30s" or a number
// of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\" or seconds")
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// Config is a function's deployment configuration. Zero fields take the
// defaults below.
type Config struct {
	// MemoryMiB caps each instance's linear memory (default 256).
	MemoryMiB int `json:"memory_mib,omitempty"`
	// Timeout bounds each invocation (default 30s).
	Timeout Duration `json:"timeout,omitempty"`
	// InitTimeout bounds the initialisation when an instance boots cold
	// (default 2m: init-heavy functions build their state there).
	InitTimeout Duration `json:"init_timeout,omitempty"`
	// MinInstances are kept warm even when idle (default 0: scale to zero).
	MinInstances int `json:"min_instances,omitempty"`
	// MaxInstances bounds the instances, busy or idle (default 4).
	MaxInstances int `json:"max_instances,omitempty"`
	// MaxQueue bounds the requests waiting for an instance; past it the
	// worker answers 429 (default 64).
	MaxQueue int `json:"max_queue,omitempty"`
	// KeepAlive is how long an idle instance is kept (default 60s).
	KeepAlive Duration `json:"keep_alive,omitempty"`
	// Public functions can be invoked without the access token.
	Public bool `json:"public,omitempty"`
	// RestoreMode is how new instances start: cold, eager, mmap, lazy,
	// reap or bulk (default: restore.Default, the fastest measured).
	RestoreMode restore.Mode `json:"restore_mode,omitempty"`
	// Policy decides when instances are snapshotted and which snapshot a
	// new instance restores: "init" (after initialisation, the default),
	// "fixed:N" (after request N), or "pronghorn[:window=W,pool=P,...]".
	Policy string `json:"policy,omitempty"`
	// PoolSize bounds the snapshots kept per function (default 12).
	PoolSize int `json:"pool_size,omitempty"`
	// RerecordMissRate re-records the working set, as the old one plus the
	// pages faulted outside it, when those exceed this fraction of its size
	// (default 0.25).
	RerecordMissRate float64 `json:"rerecord_miss_rate,omitempty"`
}

// Defaults of Config.
const (
	DefaultMemoryMiB    = 256
	DefaultTimeout      = 30 * time.Second
	DefaultInitTimeout  = 2 * time.Minute
	DefaultMaxInstances = 4
	DefaultMaxQueue     = 64
	DefaultKeepAlive    = 60 * time.Second
	DefaultMissRate     = 0.25
	DefaultPoolSize     = 12
	maxMemoryMiB        = 4096
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MemoryMiB == 0 {
		c.MemoryMiB = DefaultMemoryMiB
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(DefaultTimeout)
	}
	if c.InitTimeout == 0 {
		c.InitTimeout = Duration(DefaultInitTimeout)
	}
	if c.MaxInstances == 0 {
		c.MaxInstances = max(DefaultMaxInstances, c.MinInstances)
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = Duration(DefaultKeepAlive)
	}
	if c.RestoreMode == "" {
		c.RestoreMode = restore.Default
	}
	if c.Policy == "" {
		c.Policy = "init"
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.RerecordMissRate == 0 {
		c.RerecordMissRate = DefaultMissRate
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("config: "+format+": %w", append(a, errdefs.ErrInvalid)...)
	}
	switch {
	case c.MemoryMiB < 1 || c.MemoryMiB > maxMemoryMiB:
		return bad("memory_mib %d outside 1..%d", c.MemoryMiB, maxMemoryMiB)
	case c.Timeout < Duration(time.Millisecond):
		return bad("timeout %s too short", time.Duration(c.Timeout))
	case c.InitTimeout < Duration(time.Millisecond):
		return bad("init_timeout %s too short", time.Duration(c.InitTimeout))
	case c.MinInstances < 0 || c.MaxInstances < 1 || c.MinInstances > c.MaxInstances:
		return bad("need 0 <= min_instances (%d) <= max_instances (%d), max >= 1", c.MinInstances, c.MaxInstances)
	case c.MaxQueue < 0:
		return bad("max_queue %d is negative", c.MaxQueue)
	case c.KeepAlive < 0:
		return bad("keep_alive is negative")
	case c.RerecordMissRate < 0:
		return bad("rerecord_miss_rate is negative")
	case c.PoolSize < 1 || c.PoolSize > 64:
		return bad("pool_size %d outside 1..64", c.PoolSize)
	}
	if _, err := policy.Parse(c.Policy, 1); err != nil {
		return bad("policy: %v", err)
	}
	if _, err := restore.ParseMode(string(c.RestoreMode)); err != nil || c.RestoreMode == restore.Warm {
		return bad("restore_mode %q is not one of cold, eager, mmap, lazy, reap, bulk", c.RestoreMode)
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
