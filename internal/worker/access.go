package worker

import (
	"fmt"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Public reports whether the named function exists and may be invoked
// without the token. It reads only the registry map: no function lock, no
// disk, so the server can answer a flood of unauthenticated requests
// without slowing the function's own callers (a function's config never
// changes in place: a redeploy replaces the whole function).
func (w *Worker) Public(name string) bool {
	f, err := w.lookup(name)
	return err == nil && f.rec.Config.Public
}

// Admit says whether a request for the named function would find room
// now: ErrNotFound if there is no such function, ErrOverloaded if every
// instance is taken and max_queue requests already wait. The server checks
// it before reading a request body, so a full queue costs no body memory.
// It is advisory: Invoke checks the queue again when the request arrives.
func (w *Worker) Admit(name string) error {
	f, err := w.lookup(name)
	if err != nil {
		return err
	}
	if ok, waiting := f.pool.admits(); !ok {
		return fmt.Errorf("function %q: %d requests already queued: %w", f.rec.Name, waiting, errdefs.ErrOverloaded)
	}
	return nil
}
