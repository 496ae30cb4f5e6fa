package chaos

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
)

// WriteTable prints the report for a reader: the totals, the outcome of
// every function's requests, and each fault with its recovery time.
func (rep *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "requests sent %d in %.0f s; never answered %d; worker restarts %d\n",
		rep.Sent, rep.DurationS, rep.Outcomes[OutcomeNeverAnswered], rep.WorkerRestarts)
	fmt.Fprintf(w, "peak worker RSS %.0f MiB, peak open descriptors %d; restore fallbacks %.0f\n\n",
		float64(rep.PeakRSSBytes)/(1<<20), rep.PeakFDs, rep.Fallbacks["total"])
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "function\tsent\toutcomes\tstarts\tp50 ms\tp99 ms")
	names := make([]string, 0, len(rep.Functions))
	for n := range rep.Functions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fs := rep.Functions[n]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.1f\t%.1f\n", n, fs.Sent, outcomes(fs.Outcomes), counts(fs.Starts), fs.P50Ms, fs.P99Ms)
	}
	fmt.Fprintf(tw, "all\t%d\t%s\t\t\t\n", rep.Sent, outcomes(rep.Outcomes))
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "at s\tfault\tserving normally again after\tdetail")
	for _, f := range rep.Faults {
		rec := "never"
		if f.RecoveryMs >= 0 {
			rec = fmt.Sprintf("%.1f s", f.RecoveryMs/1000)
		}
		fmt.Fprintf(tw, "%.0f\t%s\t%s\t%s\n", f.AtS, f.Name, rec, f.Detail)
	}
	tw.Flush()
}

// counts formats counts by key, sorted.
func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var s string
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", k, m[k])
	}
	return s
}

// outcomes formats outcome counts, "ok" first.
func outcomes(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != OutcomeOK {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	s := fmt.Sprintf("ok %d", m[OutcomeOK])
	for _, k := range keys {
		s += fmt.Sprintf(", %s %d", k, m[k])
	}
	return s
}
