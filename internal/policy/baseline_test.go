package policy

import (
	"errors"
	"slices"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// pool builds a pool of candidates taken after the given requests, oldest
// first.
func pool(reqs ...int) []Candidate {
	p := make([]Candidate, len(reqs))
	for i, r := range reqs {
		p[i] = Candidate{ID: string(rune('a' + i)), Request: r}
	}
	return p
}

func mustParse(t testing.TB, spec string, seed uint64) Policy {
	t.Helper()
	p, err := Parse(spec, seed)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestChooseBaselines(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec string
		pool []Candidate
		want int
	}{
		{"init empty", "init", nil, Cold},
		{"init only", "init", pool(0), 0},
		{"init among others", "init", pool(5, 0, 3), 1},
		{"init newest of two", "init", pool(0, 4, 0), 2},
		{"init none at 0", "init", pool(1, 2), Cold},
		{"fixed empty", "fixed:3", nil, Cold},
		{"fixed falls back to init", "fixed:3", pool(0), 0},
		{"fixed prefers its own", "fixed:3", pool(0, 3), 1},
		{"fixed highest at most N", "fixed:3", pool(0, 2, 1), 1},
		{"fixed ignores later", "fixed:3", pool(0, 7, 4), 0},
		{"fixed only later", "fixed:3", pool(7), Cold},
		{"fixed newest on tie", "fixed:3", pool(3, 0, 3), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.spec, 1)
			if got := p.Choose(tc.pool); got != tc.want {
				t.Errorf("%s.Choose(%v) = %d, want %d", tc.spec, tc.pool, got, tc.want)
			}
		})
	}
}

func TestCheckpointAtBaselines(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		start int
		want  int
	}{
		{"init", 1, 0},
		{"init", 9, 0},
		{"fixed:1", 1, 1},
		{"fixed:1", 2, 0},
		{"fixed:5", 1, 5},
		{"fixed:5", 5, 5},
		{"fixed:5", 6, 0},
		{"fixed:5", 40, 0},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			if got := mustParse(t, tc.spec, 1).CheckpointAt(tc.start); got != tc.want {
				t.Errorf("%s.CheckpointAt(%d) = %d, want %d", tc.spec, tc.start, got, tc.want)
			}
		})
	}
}

func TestPruneBaselines(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     string
		pool     []Candidate
		capacity int
		want     []int
	}{
		{"init under capacity", "init", pool(0, 1), 2, []int{0, 1}},
		{"init keeps request 0", "init", pool(0, 1, 2), 2, []int{0}},
		{"init keeps newest request 0", "init", pool(0, 1, 0), 1, []int{2}},
		{"init keeps newest", "init", pool(4, 1, 2), 2, []int{2}},
		{"init zero capacity", "init", pool(0, 1), 0, nil},
		{"fixed keeps in Choose order", "fixed:3", pool(0, 3, 5, 1), 2, []int{1, 3}},
		{"fixed keeps init next", "fixed:3", pool(0, 3, 5), 2, []int{0, 1}},
		{"fixed newest of equals", "fixed:3", pool(3, 0, 3), 1, []int{2}},
		{"fixed nearest later last", "fixed:3", pool(9, 5, 3), 2, []int{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustParse(t, tc.spec, 1).Prune(tc.pool, tc.capacity)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Prune(%v, %d) = %v, want %v", tc.pool, tc.capacity, got, tc.want)
			}
		})
	}
}

func TestBaselineState(t *testing.T) {
	for _, spec := range []string{"init", "fixed:2"} {
		t.Run(spec, func(t *testing.T) {
			p := mustParse(t, spec, 1)
			b, err := p.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			for _, ok := range [][]byte{b, nil, []byte(`{"v":1,"ema_ms":[1]}`)} {
				if err := p.UnmarshalState(ok); err != nil {
					t.Errorf("UnmarshalState(%q): %v", ok, err)
				}
			}
			if err := p.UnmarshalState([]byte("[1")); !errors.Is(err, errdefs.ErrCorrupt) {
				t.Errorf("UnmarshalState(garbage) = %v, want ErrCorrupt", err)
			}
		})
	}
}
