package trace

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

var update = flag.Bool("update", false, "rewrite testdata/synthetic from Synthesize")

const syntheticDir = "testdata/synthetic"

// TestSyntheticGolden checks that testdata/synthetic is what Synthesize
// produces, so the checked-in trace is reproducible; -update rewrites it.
func TestSyntheticGolden(t *testing.T) {
	tr := Synthesize(30, 1)
	files := map[string]func(*bytes.Buffer) error{
		"invocations.csv": func(b *bytes.Buffer) error { return WriteInvocations(b, tr) },
		"durations.csv":   func(b *bytes.Buffer) error { return WriteDurations(b, tr) },
		"memory.csv":      func(b *bytes.Buffer) error { return WriteMemory(b, tr) },
	}
	for name, write := range files {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := write(&b); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(syntheticDir, name)
			if *update {
				if err := os.MkdirAll(syntheticDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, b.Bytes()) {
				t.Fatalf("%s differs from Synthesize(30, 1); run with -update", p)
			}
		})
	}
}

func TestLoadSynthetic(t *testing.T) {
	tr, err := Load(DirFiles(syntheticDir))
	if err != nil {
		t.Fatal(err)
	}
	want := Synthesize(30, 1)
	if len(tr.Minutes) != 30 || tr.Minutes[0] != 1 || tr.Minutes[29] != 30 {
		t.Fatalf("minutes = %v", tr.Minutes)
	}
	if len(tr.Functions) != len(want.Functions) {
		t.Fatalf("functions = %d, want %d", len(tr.Functions), len(want.Functions))
	}
	for i, f := range tr.Functions {
		w := want.Functions[i]
		t.Run(w.Trigger+"/"+w.Function[:8], func(t *testing.T) {
			if f.Key != w.Key || f.Trigger != w.Trigger || f.Total() != w.Total() {
				t.Fatalf("got %+v total %d, want %+v total %d", f.Key, f.Total(), w.Key, w.Total())
			}
			if f.Duration == nil || f.Duration.Percentiles[50] != w.Duration.Percentiles[50] {
				t.Fatalf("duration = %+v, want %+v", f.Duration, w.Duration)
			}
			if f.Memory == nil || f.Memory.AverageMb != w.Memory.AverageMb {
				t.Fatalf("memory = %+v, want %+v", f.Memory, w.Memory)
			}
		})
	}
}

// TestLoadAzureSample parses the real 2019 sample when the machine has it.
func TestLoadAzureSample(t *testing.T) {
	dir := "/work/shared/traces/azure2019-sample"
	if _, err := os.Stat(dir); err != nil {
		t.Skip("real Azure trace sample not present")
	}
	tr, err := Load(DirFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	// Figures from the sample's README.
	if len(tr.Functions) != 500 || len(tr.Minutes) != 480 || tr.Minutes[0] != 480 {
		t.Fatalf("functions=%d minutes=%d first=%d", len(tr.Functions), len(tr.Minutes), tr.Minutes[0])
	}
	if got := tr.Total(); got != 3037902 {
		t.Fatalf("total = %d, want 3037902", got)
	}
	withDur, withMem := 0, 0
	for _, f := range tr.Functions {
		if f.Duration != nil {
			withDur++
		}
		if f.Memory != nil {
			withMem++
		}
	}
	if withDur != 500 || withMem != 500 {
		t.Fatalf("durations joined %d, memory joined %d, want 500 each", withDur, withMem)
	}
}

func TestParseErrors(t *testing.T) {
	const head = "HashOwner,HashApp,HashFunction,Trigger,1,2\n"
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "x.csv:1: empty file"},
		{"missing column", "HashOwner,HashApp,Trigger,1\n", `x.csv:1: header lacks column "HashFunction"`},
		{"wrong order", "HashOwner,HashApp,Trigger,HashFunction,1\n", "x.csv:1: want HashOwner"},
		{"no minutes", "HashOwner,HashApp,HashFunction,Trigger\n", "x.csv:1: no minute columns"},
		{"bad label", "HashOwner,HashApp,HashFunction,Trigger,1,two\n", `x.csv:1: column 6: minute label "two"`},
		{"gap in labels", "HashOwner,HashApp,HashFunction,Trigger,1,3\n", "x.csv:1: column 6: minute 3 does not follow 1"},
		{"non-numeric count", head + "o,a,f,http,1,2\no,a,g,http,1,x\n", `x.csv:3: minute 2: count "x"`},
		{"negative count", head + "o,a,f,http,-1,2\n", `x.csv:2: minute 1: count "-1"`},
		{"short row", head + "o,a,f,http,1\n", "x.csv:2: wrong number of fields"},
		{"duplicate", head + "o,a,f,http,1,2\no,a,f,http,1,2\n", "x.csv:3: function o/a/f listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInvocations(strings.NewReader(tt.in), "x.csv")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	t.Run("durations non-numeric", func(t *testing.T) {
		in := "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100\n" +
			"o,a,f,3,10,0.0,6.0,0,0,1,1,3,27,492\no,a,g,3,10,0.0,6.0,0,0,1,fast,3,27,492\n"
		_, err := ParseDurations(strings.NewReader(in), "d.csv")
		if err == nil || !strings.Contains(err.Error(), `d.csv:3: column percentile_Average_50: "fast" is not a number`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(Files{Invocations: filepath.Join(t.TempDir(), "nope.csv")})
		if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "nope.csv") {
			t.Fatalf("err = %v, want ErrNotFound naming the file", err)
		}
	})
}

func TestMinuteOffsets(t *testing.T) {
	for _, s := range []Spacing{Exponential, Uniform, Equidistant} {
		t.Run(s.String(), func(t *testing.T) {
			counts := []int{0, 1, 7, 100, 0, 3}
			got := Arrivals(counts, time.Minute, s, 42)
			per := make([]int, len(counts))
			for i, at := range got {
				if i > 0 && at < got[i-1] {
					t.Fatalf("arrival %d at %v before %v", i, at, got[i-1])
				}
				per[at/time.Minute]++
			}
			for i := range counts {
				if per[i] != counts[i] {
					t.Fatalf("minute %d has %d arrivals, want %d", i, per[i], counts[i])
				}
			}
			again := Arrivals(counts, time.Minute, s, 42)
			for i := range got {
				if got[i] != again[i] {
					t.Fatal("same seed gave different arrivals")
				}
			}
			if s != Equidistant {
				other := Arrivals(counts, time.Minute, s, 43)
				same := true
				for i := range got {
					same = same && got[i] == other[i]
				}
				if same {
					t.Fatal("different seeds gave the same arrivals")
				}
			}
		})
	}
}

// TestExponentialSpacing checks the statistical shape of exponential
// spacing: the coefficient of variation of Poisson gaps is 1, of
// equidistant gaps 0.
func TestExponentialSpacing(t *testing.T) {
	tests := []struct {
		s      Spacing
		cv     float64
		within float64
	}{
		{Exponential, 1, 0.05},
		{Uniform, math.Sqrt(1.0 / 3), 0.05},
		{Equidistant, 0, 0.001},
	}
	for _, tt := range tests {
		t.Run(tt.s.String(), func(t *testing.T) {
			at := MinuteOffsets(20000, time.Minute, tt.s, rand.New(rand.NewPCG(7, 7)))
			var gaps []float64
			for i := 1; i < len(at); i++ {
				gaps = append(gaps, float64(at[i]-at[i-1]))
			}
			mean, sd := meanSD(gaps)
			if cv := sd / mean; math.Abs(cv-tt.cv) > tt.within {
				t.Fatalf("coefficient of variation = %.3f, want %.3f±%.3f", cv, tt.cv, tt.within)
			}
		})
	}
}

func meanSD(xs []float64) (float64, float64) {
	var sum, sq float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(len(xs))
	for _, x := range xs {
		sq += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sq / float64(len(xs)))
}

func TestParseSpacing(t *testing.T) {
	for _, s := range []Spacing{Exponential, Uniform, Equidistant} {
		if got, err := ParseSpacing(s.String()); err != nil || got != s {
			t.Fatalf("ParseSpacing(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseSpacing("gaussian"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseInvocations(f *testing.F) {
	f.Add([]byte("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,2\n"))
	f.Add([]byte("HashOwner,HashApp,HashFunction,Trigger,5\n\"o\",a,f,http,9\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := ParseInvocations(bytes.NewReader(in), "f.csv")
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := WriteInvocations(&b, tr); err != nil {
			t.Fatal(err)
		}
		again, err := ParseInvocations(&b, "again.csv")
		if err != nil {
			t.Fatalf("re-parse of written trace: %v", err)
		}
		if again.Total() != tr.Total() || len(again.Functions) != len(tr.Functions) {
			t.Fatal("round trip changed the trace")
		}
	})
}
