package load

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// goodConfig is `thaw load`'s defaults with one function.
func goodConfig() Config {
	return Config{Rate: 10, Duration: 2 * time.Second, Arrivals: "poisson", BurstOn: time.Second, BurstOff: time.Second,
		Functions: []string{"a", " "}, Path: "/", TraceFns: 8, MinuteSecs: 60, Spacing: "exponential", Selection: "stratified",
		Mapping: "round-robin", Seed: 1, MaxInFlight: 64, Timeout: 30 * time.Second, Server: "http://127.0.0.1:1"}
}

func TestPlanInvalid(t *testing.T) {
	synthetic := filepath.Join("..", "trace", "testdata", "synthetic")
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no functions", func(c *Config) { c.Functions = []string{" "} }, "--functions"},
		{"bad server", func(c *Config) { c.Server = "ftp://x" }, "--server"},
		{"zero duration", func(c *Config) { c.Duration = 0 }, "--duration"},
		{"zero in flight", func(c *Config) { c.MaxInFlight = 0 }, "--max-in-flight"},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, "--timeout"},
		{"bad arrivals", func(c *Config) { c.Arrivals = "sometimes" }, "--arrivals"},
		{"zero rate", func(c *Config) { c.Rate = 0 }, "rate"},
		{"bad bursts", func(c *Config) { c.Arrivals, c.BurstOn = "bursts", 0 }, "--burst-on"},
		{"NaN burst rate", func(c *Config) { c.Arrivals, c.Rate = "bursts", math.NaN() }, "--rate"},
		{"bad spacing", func(c *Config) { c.Trace, c.Spacing = synthetic, "random" }, "spacing"},
		{"bad selection", func(c *Config) { c.Trace, c.Selection = synthetic, "best" }, "--selection"},
		{"bad mapping", func(c *Config) { c.Trace, c.Mapping = synthetic, "alphabetical" }, "--mapping"},
		{"bad minute", func(c *Config) { c.Trace, c.MinuteSecs = synthetic, -1 }, "--minute-seconds"},
		{"tiny minute", func(c *Config) { c.Trace, c.MinuteSecs = synthetic, 1e-6 }, "--minute-seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goodConfig()
			tc.edit(&c)
			_, err := c.Plan()
			if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Plan() = %v; want ErrInvalid mentioning %s", err, tc.want)
			}
		})
	}
	c := goodConfig()
	c.Trace = filepath.Join(t.TempDir(), "none")
	if _, err := c.Plan(); err == nil || !strings.Contains(err.Error(), "--trace") {
		t.Errorf("missing trace: %v", err)
	}
}

func TestPlan(t *testing.T) {
	for _, arrivals := range []string{"constant", "poisson", "bursts"} {
		c := goodConfig()
		c.Arrivals = arrivals
		p, err := c.Plan()
		if err != nil {
			t.Fatalf("%s: %v", arrivals, err)
		}
		if p.Label != arrivals || len(p.Schedule) == 0 || p.Sample != nil {
			t.Errorf("%s: label %q, %d arrivals, sample %v", arrivals, p.Label, len(p.Schedule), p.Sample)
		}
		for _, a := range p.Schedule {
			if a.Function != "a" || a.At < 0 || a.At >= c.Duration {
				t.Fatalf("%s: arrival %+v", arrivals, a)
			}
		}
	}
	c := goodConfig()
	c.Trace, c.MinuteSecs = filepath.Join("..", "trace", "testdata", "synthetic"), 1
	p, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if p.Label != "trace" || p.Sample == nil || p.Sample.Minutes() != 2 {
		t.Errorf("trace plan: label %q, sample %+v", p.Label, p.Sample)
	}
}
