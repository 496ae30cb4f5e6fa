package trace

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Files names the three files of a trace. Durations and Memory may be empty:
// the invocations alone are enough to replay a trace, the other two only
// inform how functions are mapped onto thaw functions.
type Files struct {
	Invocations string
	Durations   string
	Memory      string
}

// DirFiles returns the files of a trace directory laid out as In-Vitro's
// samples are: invocations.csv, and durations.csv and memory.csv when they
// exist.
func DirFiles(dir string) Files {
	f := Files{Invocations: filepath.Join(dir, "invocations.csv")}
	if p := filepath.Join(dir, "durations.csv"); exists(p) {
		f.Durations = p
	}
	if p := filepath.Join(dir, "memory.csv"); exists(p) {
		f.Memory = p
	}
	return f
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Load reads the trace in files and joins durations and memory onto its
// functions.
func Load(files Files) (*Trace, error) {
	t, err := readFile(files.Invocations, ParseInvocations)
	if err != nil {
		return nil, err
	}
	if files.Durations != "" {
		d, err := readFile(files.Durations, ParseDurations)
		if err != nil {
			return nil, err
		}
		for _, f := range t.Functions {
			f.Duration = d[f.Key]
		}
	}
	if files.Memory != "" {
		m, err := readFile(files.Memory, ParseMemory)
		if err != nil {
			return nil, err
		}
		for _, f := range t.Functions {
			if mem, ok := m[f.Key]; ok {
				f.Memory = mem
			} else if mem, ok := m[Key{Owner: f.Owner, App: f.App}]; ok {
				// The original release has memory per application.
				f.Memory = mem
			}
		}
	}
	return t, nil
}

func readFile[T any](path string, parse func(io.Reader, string) (T, error)) (T, error) {
	var zero T
	fh, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return zero, fmt.Errorf("trace: %w: %w", errdefs.ErrNotFound, err)
		}
		return zero, fmt.Errorf("trace: %w", err)
	}
	defer fh.Close()
	return parse(fh, path)
}

// table is a CSV file read record by record, with the positions of its
// named columns and errors that say file:line.
type table struct {
	name string
	r    *csv.Reader
	cols map[string]int
	head []string
}

func newTable(r io.Reader, name string, required ...string) (*table, error) {
	t := &table{name: name, r: csv.NewReader(r), cols: map[string]int{}}
	t.r.ReuseRecord = false
	head, err := t.r.Read()
	if err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%s:1: empty file, want a header: %w", name, errdefs.ErrInvalid)
		}
		return nil, t.wrap(err)
	}
	t.head = head
	for i, h := range head {
		t.cols[strings.TrimSpace(h)] = i
	}
	for _, c := range required {
		if _, ok := t.cols[c]; !ok {
			return nil, fmt.Errorf("%s:1: header lacks column %q: %w", name, c, errdefs.ErrInvalid)
		}
	}
	return t, nil
}

// next returns the next record, or nil at the end of the file.
func (t *table) next() ([]string, error) {
	rec, err := t.r.Read()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, t.wrap(err)
	}
	return rec, nil
}

func (t *table) wrap(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: %v: %w", t.name, pe.Line, pe.Err, errdefs.ErrInvalid)
	}
	return fmt.Errorf("%s: %w", t.name, err)
}

// errf reports a problem with the record last read.
func (t *table) errf(format string, args ...any) error {
	line, _ := t.r.FieldPos(0)
	return fmt.Errorf("%s:%d: %s: %w", t.name, line, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
}

func (t *table) str(rec []string, col string) string {
	i, ok := t.cols[col]
	if !ok {
		return ""
	}
	return rec[i]
}

func (t *table) float(rec []string, col string) (float64, error) {
	s := strings.TrimSpace(t.str(rec, col))
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, t.errf("column %s: %q is not a number", col, s)
	}
	return v, nil
}

func (t *table) int(rec []string, col string) (int, error) {
	v, err := t.float(rec, col)
	if err != nil {
		return 0, err
	}
	if v < 0 || v != float64(int(v)) {
		return 0, t.errf("column %s: %v is not a count", col, v)
	}
	return int(v), nil
}

func (t *table) key(rec []string) Key {
	return Key{Owner: t.str(rec, "HashOwner"), App: t.str(rec, "HashApp"), Function: t.str(rec, "HashFunction")}
}

// ParseInvocations parses an invocations-per-minute file; name is used in
// error messages.
func ParseInvocations(r io.Reader, name string) (*Trace, error) {
	t, err := newTable(r, name, "HashOwner", "HashApp", "HashFunction", "Trigger")
	if err != nil {
		return nil, err
	}
	// Every column after Trigger is a minute; labels must be contiguous
	// minute numbers so that column i is minute Minutes[0]+i.
	first := t.cols["Trigger"] + 1
	if first != 4 {
		return nil, fmt.Errorf("%s:1: want HashOwner,HashApp,HashFunction,Trigger before the minutes: %w", name, errdefs.ErrInvalid)
	}
	tr := &Trace{}
	for i, h := range t.head[first:] {
		m, err := strconv.Atoi(strings.TrimSpace(h))
		if err != nil {
			return nil, fmt.Errorf("%s:1: column %d: minute label %q is not a number: %w", name, first+i+1, h, errdefs.ErrInvalid)
		}
		if i > 0 && m != tr.Minutes[i-1]+1 {
			return nil, fmt.Errorf("%s:1: column %d: minute %d does not follow %d: %w", name, first+i+1, m, tr.Minutes[i-1], errdefs.ErrInvalid)
		}
		tr.Minutes = append(tr.Minutes, m)
	}
	if len(tr.Minutes) == 0 {
		return nil, fmt.Errorf("%s:1: no minute columns: %w", name, errdefs.ErrInvalid)
	}
	seen := map[Key]bool{}
	for {
		rec, err := t.next()
		if err != nil {
			return nil, err
		}
		if rec == nil {
			break
		}
		f := &Function{Key: t.key(rec), Trigger: t.str(rec, "Trigger"), Counts: make([]int, len(tr.Minutes))}
		if seen[f.Key] {
			return nil, t.errf("function %s/%s/%s listed twice", f.Owner, f.App, f.Function)
		}
		seen[f.Key] = true
		for i, s := range rec[first:] {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 0 {
				return nil, t.errf("minute %d: count %q is not a non-negative integer", tr.Minutes[i], s)
			}
			f.Counts[i] = n
		}
		tr.Functions = append(tr.Functions, f)
	}
	return tr, nil
}

// percentiles reads the columns named by format for each of ps.
func (t *table) percentiles(rec []string, format string, ps []int) (map[int]float64, error) {
	out := make(map[int]float64, len(ps))
	for _, p := range ps {
		v, err := t.float(rec, fmt.Sprintf(format, p))
		if err != nil {
			return nil, err
		}
		out[p] = v
	}
	return out, nil
}

// durationPercentiles are the percentile columns of the durations file.
var durationPercentiles = []int{0, 1, 25, 50, 75, 99, 100}

// ParseDurations parses a function-durations file, keyed by function.
func ParseDurations(r io.Reader, name string) (map[Key]*Duration, error) {
	req := []string{"HashOwner", "HashApp", "HashFunction", "Average", "Count", "Minimum", "Maximum"}
	for _, p := range durationPercentiles {
		req = append(req, fmt.Sprintf("percentile_Average_%d", p))
	}
	t, err := newTable(r, name, req...)
	if err != nil {
		return nil, err
	}
	out := map[Key]*Duration{}
	for {
		rec, err := t.next()
		if err != nil {
			return nil, err
		}
		if rec == nil {
			return out, nil
		}
		d := &Duration{}
		if d.AverageMs, err = t.float(rec, "Average"); err != nil {
			return nil, err
		}
		if d.Count, err = t.int(rec, "Count"); err != nil {
			return nil, err
		}
		if d.MinimumMs, err = t.float(rec, "Minimum"); err != nil {
			return nil, err
		}
		if d.MaximumMs, err = t.float(rec, "Maximum"); err != nil {
			return nil, err
		}
		if d.Percentiles, err = t.percentiles(rec, "percentile_Average_%d", durationPercentiles); err != nil {
			return nil, err
		}
		out[t.key(rec)] = d
	}
}

// memoryPercentiles are the percentile columns of the memory file.
var memoryPercentiles = []int{1, 5, 25, 50, 75, 95, 99, 100}

// ParseMemory parses a memory file, keyed by function, or by application
// (Key.Function empty) when the file has no HashFunction column as in the
// original per-application release.
func ParseMemory(r io.Reader, name string) (map[Key]*Memory, error) {
	req := []string{"HashOwner", "HashApp", "SampleCount", "AverageAllocatedMb"}
	for _, p := range memoryPercentiles {
		req = append(req, fmt.Sprintf("AverageAllocatedMb_pct%d", p))
	}
	t, err := newTable(r, name, req...)
	if err != nil {
		return nil, err
	}
	out := map[Key]*Memory{}
	for {
		rec, err := t.next()
		if err != nil {
			return nil, err
		}
		if rec == nil {
			return out, nil
		}
		m := &Memory{}
		if m.SampleCount, err = t.int(rec, "SampleCount"); err != nil {
			return nil, err
		}
		if m.AverageMb, err = t.float(rec, "AverageAllocatedMb"); err != nil {
			return nil, err
		}
		if m.Percentiles, err = t.percentiles(rec, "AverageAllocatedMb_pct%d", memoryPercentiles); err != nil {
			return nil, err
		}
		out[t.key(rec)] = m
	}
}
