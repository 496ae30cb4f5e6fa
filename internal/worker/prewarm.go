package worker

import (
	"context"
	"time"
)

// Idle is how many idle warm instances the named function has now (0 for
// an unknown function): what a cluster's placement asks of the receiving
// worker on every invocation, so it takes one lock and reads no disk.
func (w *Worker) Idle(name string) int {
	f, err := w.lookup(name)
	if err != nil {
		return 0
	}
	idle, _ := f.pool.counts()
	return idle
}

// Prewarm starts one instance of the named function, as its deploy's
// restore mode would for a request, and leaves it idle: a cluster asks it
// of a worker when a request waits for room (placement's Hold, after
// Knative's activator), so that the request finds a warm instance when it
// is placed again. It does nothing when an instance is idle already or
// the function is at max_instances, and gives up when the worker's memory
// stays full until ctx ends. The instance is reaped after its keep-alive
// like any other.
func (w *Worker) Prewarm(ctx context.Context, name string) error {
	f, err := w.lookup(name)
	if err != nil {
		return err
	}
	if !f.pool.reserve() {
		return nil
	}
	res, err := w.reserveMemory(ctx, f)
	if err != nil {
		f.release(nil)
		return err
	}
	var t Timing
	t0 := time.Now()
	inst, err := f.start(context.WithoutCancel(ctx), f.rec.Config.mode(), false, false, &t)
	if err != nil {
		res.release()
		f.release(nil)
		return err
	}
	res.attach(inst.Instance)
	w.metrics.starts.WithLabelValues(f.rec.Name, string(inst.mode)).Inc()
	w.log.Debug("pre-warmed", "function", name, "mode", inst.mode, "start", time.Since(t0))
	f.release(inst)
	return nil
}
