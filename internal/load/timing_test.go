package load

import (
	"errors"
	"reflect"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

func TestParseServerTiming(t *testing.T) {
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
		{"cold token desc", `start;desc=cold;dur=140, exec;dur=2`, Timing{StartMs: 140, ExecMs: 2, StartKind: "cold"}},
		{"quoted comma and unknown param", `start;dur=1;desc="restore:x,y";foo=bar`, Timing{StartMs: 1, StartKind: "restore", RestoreMode: "x,y"}},
		{"empty", ``, Timing{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseServerTiming(tt.in)
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
			if _, err := ParseServerTiming(bad); !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func FuzzParseServerTiming(f *testing.F) {
	f.Add(`queue;dur=0.01, start;dur=12.3;desc="restore:reap", exec;dur=1.2`)
	f.Add(`a;desc="\"", b`)
	f.Fuzz(func(t *testing.T, s string) {
		ParseServerTiming(s) // must not panic
	})
}
