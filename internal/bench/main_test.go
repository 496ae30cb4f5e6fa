package bench

import (
	"os"
	"testing"

	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/store/stack"
)

// TestMain lets the test binary serve as the worker's pager process, which
// the restore benchmark's lazy, reap and bulk restores start.
func TestMain(m *testing.M) {
	pager.RunIfChild(stack.OpenReaderJSON)
	os.Exit(m.Run())
}
