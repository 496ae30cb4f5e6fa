package report

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Activity is a one-line terminal status for a long step whose progress
// cannot be counted: what it is doing and for how long, redrawn every
// second, so that a deploy that compiles, boots and snapshots for twenty
// seconds does not look hung. Like Progress it draws only on a terminal,
// and it erases its line when done, leaving the output as without it.
type Activity struct {
	mu    sync.Mutex
	w     io.Writer // nil: draw nothing
	stage string
	start time.Time
	stop  chan struct{}
	done  chan struct{}
}

// NewActivity starts a status line on w showing stage, silent unless w is
// a terminal.
func NewActivity(w io.Writer, stage string) *Activity {
	if f, ok := w.(*os.File); !ok || !IsTerminal(f) {
		w = nil
	}
	return NewActivityTo(w, stage, time.Second)
}

// NewActivityTo starts a status line on w (nil: silent) redrawn every
// interval.
func NewActivityTo(w io.Writer, stage string, every time.Duration) *Activity {
	a := &Activity{w: w, stage: stage, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	if w == nil {
		close(a.done)
		return a
	}
	a.draw()
	go func() {
		defer close(a.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-a.stop:
				return
			case <-t.C:
				a.draw()
			}
		}
	}()
	return a
}

// Stage replaces what the line says the step is doing.
func (a *Activity) Stage(stage string) {
	a.mu.Lock()
	a.stage = stage
	a.mu.Unlock()
	if a.w != nil {
		a.draw()
	}
}

// Done stops redrawing and erases the line. Call it once.
func (a *Activity) Done() {
	close(a.stop)
	<-a.done
	if a.w != nil {
		a.mu.Lock()
		fmt.Fprint(a.w, "\r\033[K")
		a.mu.Unlock()
	}
}

func (a *Activity) draw() {
	a.mu.Lock()
	defer a.mu.Unlock()
	fmt.Fprintf(a.w, "\r\033[K%s %s", a.stage, time.Since(a.start).Truncate(time.Second))
}
