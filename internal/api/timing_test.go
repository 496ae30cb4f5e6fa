package api

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

func TestParseServerTiming(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []Metric
		wantErr bool
	}{
		{"", nil, false},
		{"a;dur=1.5", []Metric{{Name: "a", Dur: 1.5, HasDur: true}}, false},
		{`a;desc="x, y;z", b;dur=2;desc=tok`, []Metric{{Name: "a", Desc: "x, y;z"}, {Name: "b", Dur: 2, HasDur: true, Desc: "tok"}}, false},
		{`Exec ; DUR = 3 ; foo=bar`, []Metric{{Name: "Exec", Dur: 3, HasDur: true}}, false},
		{"a;dur=abc", nil, true},
		{";dur=1", nil, true},
		{`start;desc="unterminated`, nil, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseServerTiming(tc.in)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestFormatServerTiming(t *testing.T) {
	got := FormatServerTiming([]Metric{
		{Name: "queue", Dur: 0.0041, HasDur: true},
		{Name: "start", Dur: 0.9396, HasDur: true, Desc: "restore:bulk"},
		{Name: "faults", Desc: "0"},
		{Name: "odd", Desc: `a "b", c`},
	})
	want := `queue;dur=0.004, start;dur=0.940;desc="restore:bulk", faults;desc="0", odd;desc="a \"b\", c"`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestParseTiming(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Timing
	}{
		{"warm", `queue;dur=0.01, start;dur=0.002;desc="warm", exec;dur=1.2`,
			Timing{QueueMs: 0.01, StartMs: 0.002, ExecMs: 1.2, StartKind: "warm"}},
		{"restore with extras", `queue;dur=0.010, start;dur=12.3;desc="restore:reap", exec;dur=1.2, map;dur=0.5, prefetch;dur=3.25, faults;desc="17", ws;desc="4096"`,
			Timing{QueueMs: 0.01, StartMs: 12.3, ExecMs: 1.2, StartKind: "restore", RestoreMode: "reap",
				Stages: map[string]float64{"map": 0.5, "prefetch": 3.25}, Faults: 17, WSBytes: 4096}},
		{"served by a cluster worker", `start;dur=0.1;desc="warm", exec;dur=1, worker;desc="w-2"`,
			Timing{StartMs: 0.1, ExecMs: 1, StartKind: "warm", Worker: "w-2"}},
		{"restore from the store, by tier", `start;dur=3;desc="restore:eager", snapshot;desc=store-peer, read-peer;desc=524288, read-remote;desc="1024", read-cache;desc=x`,
			Timing{StartMs: 3, StartKind: "restore", RestoreMode: "eager", Snapshot: "store-peer",
				StoreBytes: map[string]int64{"peer": 524288, "remote": 1024}}},
		{"cold token desc", `start;desc=cold;dur=140, exec;dur=2`, Timing{StartMs: 140, ExecMs: 2, StartKind: "cold"}},
		{"names in any case", `EXEC;dur=2, Map;dur=1`, Timing{ExecMs: 2, Stages: map[string]float64{"map": 1}}},
		{"quoted comma and unknown param", `start;dur=1;desc="restore:x,y";foo=bar`, Timing{StartMs: 1, StartKind: "restore", RestoreMode: "x,y"}},
		{"empty", ``, Timing{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTiming(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{`exec;dur=fast`, `;dur=1`, `start;desc="unterminated`} {
		t.Run("bad "+bad, func(t *testing.T) {
			if _, err := ParseTiming(bad); !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

// FuzzServerTiming: decoding never panics; whatever decodes re-encodes to
// a header that decodes to the same metrics (durations as rounded to the
// header's 3 decimals), and encoding that again changes nothing.
func FuzzServerTiming(f *testing.F) {
	f.Add(`queue;dur=0.01, start;dur=12.3;desc="restore:reap", exec;dur=1.2`)
	f.Add(`a;desc="\"", b`)
	f.Add(`faults;desc="0", source;desc=local, x;dur=NaN, y;dur=-Inf`)
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseServerTiming(s)
		_, terr := ParseTiming(s)
		if (err == nil) != (terr == nil) {
			t.Fatalf("ParseServerTiming: %v; ParseTiming: %v", err, terr)
		}
		if err != nil {
			return
		}
		enc := FormatServerTiming(ms)
		back, err := ParseServerTiming(enc)
		if err != nil {
			t.Fatalf("%q encoded as %q, which does not decode: %v", s, enc, err)
		}
		if len(back) != len(ms) {
			t.Fatalf("%q: %d metrics, %d after a round trip through %q", s, len(ms), len(back), enc)
		}
		for i := range ms {
			a, b := ms[i], back[i]
			if a.Name != b.Name || a.Desc != b.Desc || a.HasDur != b.HasDur || !sameAtMillis(a.Dur, b.Dur) {
				t.Fatalf("%q: metric %d %+v came back as %+v through %q", s, i, a, b, enc)
			}
		}
		if again := FormatServerTiming(back); again != enc {
			t.Fatalf("%q: encoding not stable: %q then %q", s, enc, again)
		}
	})
}

// FuzzServerTimingEncode: a metric with a token name, any description and
// any duration is decoded from its encoding as it was, the duration to the
// header's 3 decimals.
func FuzzServerTimingEncode(f *testing.F) {
	f.Add("start", "restore:bulk", 0.9396, true)
	f.Add("faults", "", 0.0, false)
	f.Add("x", "a \"b\", c;d=\\", -1e300, true)
	f.Fuzz(func(t *testing.T, name, desc string, dur float64, hasDur bool) {
		if !isToken(name) {
			return
		}
		m := Metric{Name: name, Desc: desc, Dur: dur, HasDur: hasDur}
		if !hasDur {
			m.Dur = 0
		}
		enc := FormatServerTiming([]Metric{m, {Name: "next", Dur: 1, HasDur: true}})
		got, err := ParseServerTiming(enc)
		if err != nil {
			t.Fatalf("%+v encoded as %q: %v", m, enc, err)
		}
		if len(got) != 2 || got[0].Name != m.Name || got[0].Desc != m.Desc || got[0].HasDur != m.HasDur ||
			!sameAtMillis(got[0].Dur, m.Dur) || got[1] != (Metric{Name: "next", Dur: 1, HasDur: true}) {
			t.Fatalf("%+v encoded as %q decoded as %+v", m, enc, got)
		}
	})
}

// sameAtMillis reports whether a and b print the same with the header's 3
// decimals (NaN matching NaN).
func sameAtMillis(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return fmt.Sprintf("%.3f", a) == fmt.Sprintf("%.3f", b)
}

// isToken reports whether s is an RFC 9110 token, what a metric name is.
func isToken(s string) bool {
	return s != "" && strings.Trim(s, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") == ""
}
