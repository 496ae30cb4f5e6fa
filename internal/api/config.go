package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
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
		return d.parse(s)
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\" or seconds: %w", errdefs.ErrInvalid)
	}
	return d.fromSeconds(secs)
}

// parse reads "1m30s" or a number of seconds ("2.5"), the forms JSON,
// query parameters and flags share.
func (d *Duration) parse(s string) error {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		return d.fromSeconds(secs)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %v: %w", s, err, errdefs.ErrInvalid)
	}
	*d = Duration(v)
	return nil
}

// fromSeconds converts a number of seconds, refusing NaN, infinities and
// values a time.Duration cannot hold (the conversion would wrap).
func (d *Duration) fromSeconds(secs float64) error {
	if math.IsNaN(secs) || math.Abs(secs) > float64(math.MaxInt64)/float64(time.Second) {
		return fmt.Errorf("duration of %v seconds is out of range: %w", secs, errdefs.ErrInvalid)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// Config is a function's deployment configuration: the JSON of the
// X-Thaw-Config header and a multipart deploy's "config" part, and, field
// by field under the same names, a deploy's query parameters (Fields).
// Zero fields take the defaults (WithDefaults). The worker checks the
// values (worker.Config.Validate) and persists this form in its registry.
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
	// reap or bulk (default DefaultMode, the fastest measured).
	RestoreMode Mode `json:"restore_mode,omitempty"`
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
	// Engine runs the function's guest code: "wazero" or "wasmtime".
	// Empty: the worker's engine (`thaw serve --engine`). A snapshot holds
	// WebAssembly-level state, so a function can change engines and keep
	// its snapshots.
	Engine string `json:"engine,omitempty"`
	// Idempotent functions may run twice for one request: in a cluster, an
	// invocation whose worker failed after receiving it is retried on
	// another (otherwise only one that never reached a worker is).
	Idempotent bool `json:"idempotent,omitempty"`
}

// Defaults of Config, as docs/api.md documents them.
const (
	DefaultMemoryMiB    = 256
	DefaultTimeout      = 30 * time.Second
	DefaultInitTimeout  = 2 * time.Minute
	DefaultMaxInstances = 4
	DefaultMaxQueue     = 64
	DefaultKeepAlive    = 60 * time.Second
	DefaultMode         = ModeBulk
	DefaultPolicy       = "init"
	DefaultPoolSize     = 12
	DefaultMissRate     = 0.25
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
		c.RestoreMode = DefaultMode
	}
	if c.Policy == "" {
		c.Policy = DefaultPolicy
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.RerecordMissRate == 0 {
		c.RerecordMissRate = DefaultMissRate
	}
	return c
}

// Field is one Config field in its string forms: its JSON name (also its
// query parameter), its `thaw deploy` flag, and how a string value (a
// query parameter, a flag) sets it. Fields is the one definition the
// server's query parameters and the CLI's flags share; a test holds it to
// Config's JSON fields, so a field cannot be added to one and not the
// other. Set parses only: the worker checks the values.
type Field struct {
	// Name is the JSON field and query parameter.
	Name string
	// Flag is the `thaw deploy` flag, without dashes.
	Flag string
	// Usage describes the field for flags.
	Usage string
	// Bool fields take no value as a flag (--public).
	Bool bool
	// Set parses v into c's field; errors wrap errdefs.ErrInvalid.
	Set func(c *Config, v string) error
}

func intField(name, flag, usage string, get func(*Config) *int) Field {
	return Field{Name: name, Flag: flag, Usage: usage,
		Set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s: want an integer: %w", name, errdefs.ErrInvalid)
			}
			*get(c) = n
			return nil
		}}
}

func durationField(name, flag, usage string, get func(*Config) *Duration) Field {
	return Field{Name: name, Flag: flag, Usage: usage,
		Set: func(c *Config, v string) error { return get(c).parse(v) }}
}

func boolField(name, flag, usage string, get func(*Config) *bool) Field {
	return Field{Name: name, Flag: flag, Usage: usage, Bool: true,
		Set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%s: want true or false: %w", name, errdefs.ErrInvalid)
			}
			*get(c) = b
			return nil
		}}
}

// Fields lists every Config field, in Config's order.
var Fields = []Field{
	intField("memory_mib", "memory-mib", fmt.Sprintf("memory cap per instance in MiB (default %d)", DefaultMemoryMiB),
		func(c *Config) *int { return &c.MemoryMiB }),
	durationField("timeout", "timeout", fmt.Sprintf("time limit per invocation (default %s)", DefaultTimeout),
		func(c *Config) *Duration { return &c.Timeout }),
	durationField("init_timeout", "init-timeout", fmt.Sprintf("time limit for a cold boot's initialisation (default %s)", DefaultInitTimeout),
		func(c *Config) *Duration { return &c.InitTimeout }),
	intField("min_instances", "min", "instances kept warm when idle (default 0: scale to zero)",
		func(c *Config) *int { return &c.MinInstances }),
	intField("max_instances", "max", fmt.Sprintf("most instances at once (default %d)", DefaultMaxInstances),
		func(c *Config) *int { return &c.MaxInstances }),
	intField("max_queue", "max-queue", fmt.Sprintf("most requests waiting for an instance before 429 (default %d)", DefaultMaxQueue),
		func(c *Config) *int { return &c.MaxQueue }),
	durationField("keep_alive", "keep-alive", fmt.Sprintf("how long an idle instance is kept (default %s)", DefaultKeepAlive),
		func(c *Config) *Duration { return &c.KeepAlive }),
	boolField("public", "public", "allow invocation without the access token", func(c *Config) *bool { return &c.Public }),
	{Name: "restore_mode", Flag: "mode", Usage: "restore mode: cold, eager, mmap, lazy, reap, bulk (default " + string(DefaultMode) + ")",
		Set: func(c *Config, v string) error { c.RestoreMode = Mode(v); return nil }},
	{Name: "policy", Flag: "policy", Usage: `snapshot policy: "init", "fixed:N" or "pronghorn[:window=W,...]" (default ` + DefaultPolicy + `)`,
		Set: func(c *Config, v string) error { c.Policy = v; return nil }},
	intField("pool_size", "pool-size", fmt.Sprintf("snapshots kept per function (default %d)", DefaultPoolSize),
		func(c *Config) *int { return &c.PoolSize }),
	{Name: "rerecord_miss_rate", Flag: "rerecord-miss-rate",
		Usage: fmt.Sprintf("re-record the working set when pages faulted outside it exceed this fraction of it (default %g)", DefaultMissRate),
		Set: func(c *Config, v string) error {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("rerecord_miss_rate: want a number: %w", errdefs.ErrInvalid)
			}
			c.RerecordMissRate = x
			return nil
		}},
	{Name: "engine", Flag: "engine", Usage: "WebAssembly engine: wasmtime or wazero (default: the worker's, thaw serve --engine)",
		Set: func(c *Config, v string) error { c.Engine = v; return nil }},
	boolField("idempotent", "idempotent", "the function may run twice for one request: a cluster retries it on another worker when its worker fails mid-request",
		func(c *Config) *bool { return &c.Idempotent }),
}

// FieldByName returns the field with JSON name name.
func FieldByName(name string) (Field, bool) {
	for _, f := range Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// SetQuery applies a deploy's query parameters, named like the JSON
// fields, to c; of a repeated parameter the last value counts. An unknown
// parameter is an error (a typo, more likely than something to ignore).
func (c *Config) SetQuery(q url.Values) error {
	for k, vs := range q {
		v := vs[len(vs)-1]
		f, ok := FieldByName(k)
		if !ok {
			return fmt.Errorf("query parameter %s: unknown parameter: %w", k, errdefs.ErrInvalid)
		}
		if err := f.Set(c, v); err != nil {
			return fmt.Errorf("query parameter %s=%q: %w", k, v, err)
		}
	}
	return nil
}

// DecodeConfig decodes JSON strictly into c: an unknown field is more
// likely a typo than something to ignore. Fields b leaves out keep their
// value in c.
func DecodeConfig(b []byte, c *Config) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config JSON: %v: %w", err, errdefs.ErrInvalid)
	}
	return nil
}
