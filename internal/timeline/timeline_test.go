package timeline

import (
	"testing"
	"time"
)

func TestTake(t *testing.T) {
	Enable(true)
	defer Enable(false)

	Mark(Called) // before any Start: dropped
	Mark(Start)
	time.Sleep(time.Millisecond)
	Mark(ReadIssued)
	Mark(ReadIssued) // a second piece: the first mark counts
	got := Take()
	if len(got) != 2 || got[Start] != 0 || got[ReadIssued] < time.Millisecond {
		t.Fatalf("Take = %v, want start at 0 and read_issued at >= 1ms", got)
	}
	if got := Take(); got != nil {
		t.Fatalf("second Take = %v, want nil: Take drops the marks", got)
	}

	// A later Start begins a new start: points before it are dropped.
	Mark(Start)
	Mark(Call)
	Mark(Start)
	Mark(Called)
	got = Take()
	if _, ok := got[Call]; ok || len(got) != 2 {
		t.Fatalf("Take = %v, want only the last start's points", got)
	}
}

func TestDisabled(t *testing.T) {
	Enable(false)
	Mark(Start)
	Mark(Call)
	if got := Take(); got != nil {
		t.Fatalf("Take = %v with recording off, want nil", got)
	}
}
