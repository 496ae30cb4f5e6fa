package report

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Progress is a one-line terminal progress bar. It draws only when its
// output is a terminal, so that logs and CI output stay clean, and redraws
// at most ten times a second. Safe for concurrent use.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer // nil: draw nothing
	label string
	total int
	done  int
	start time.Time
	last  time.Time
}

// NewProgress returns a progress bar on stderr, silent unless stderr is a
// terminal.
func NewProgress(label string, total int) *Progress {
	var w io.Writer
	if IsTerminal(os.Stderr) {
		w = os.Stderr
	}
	return NewProgressTo(w, label, total)
}

// NewProgressTo returns a progress bar writing to w (nil: silent).
func NewProgressTo(w io.Writer, label string, total int) *Progress {
	return &Progress{w: w, label: label, total: total, start: time.Now()}
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Set records that done of total units are finished; it fits
// load.Options.Progress.
func (p *Progress) Set(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.total = done, total
	if p.w == nil {
		return
	}
	if now := time.Now(); done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	} else {
		p.last = now
	}
	p.draw()
}

// Add records n more finished units.
func (p *Progress) Add(n int) {
	p.mu.Lock()
	done, total := p.done+n, p.total
	p.mu.Unlock()
	p.Set(done, total)
}

// Done ends the bar's line.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w != nil {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

const barWidth = 30

func (p *Progress) draw() {
	frac := 0.0
	if p.total > 0 {
		frac = min(float64(p.done)/float64(p.total), 1)
	}
	n := int(frac * barWidth)
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d %3.0f%% %s", p.label, strings.Repeat("=", n), strings.Repeat(" ", barWidth-n),
		p.done, p.total, 100*frac, time.Since(p.start).Truncate(time.Second))
}
