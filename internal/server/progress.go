package server

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/worker"
)

// progressStream writes a deploy's progress stream (api.ContentTypeProgress)
// for a client that asked for it: one api.DeployEvent a line, each flushed
// at once. The status is 200 from the first line on, so a failure after it
// is the final error event, with the category and status an error
// response would have had.
type progressStream struct {
	s     *Server
	w     http.ResponseWriter
	rc    *http.ResponseController
	start time.Time
	mu    sync.Mutex // the worker's hook and the handler both write
}

// newProgressStream starts the stream: headers, then the received event.
func (s *Server) newProgressStream(w http.ResponseWriter, start time.Time) *progressStream {
	p := &progressStream{s: s, w: w, rc: http.NewResponseController(w), start: start}
	w.Header().Set("Content-Type", api.ContentTypeProgress)
	// Intermediaries must pass each line on as it comes.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	p.send(api.DeployEvent{Stage: api.StageReceived})
	return p
}

// hook is the worker's DeployProgress: each stage as an event.
func (p *progressStream) hook() worker.DeployProgress {
	return func(stage api.DeployStage) { p.send(api.DeployEvent{Stage: stage}) }
}

// done ends the stream with the deployed function.
func (p *progressStream) done(info worker.Info) {
	fi := functionInfo(info)
	p.send(api.DeployEvent{Stage: api.StageDone, Info: &fi})
}

// fail ends the stream with err, as writeError would describe it.
func (p *progressStream) fail(r *http.Request, err error) {
	status := Status(err)
	p.send(api.DeployEvent{Stage: api.StageError, Error: redactPaths(err.Error()), Category: category(err), Status: status})
	p.s.logFailure(r, status, err)
}

// send writes one event and flushes it. Each line gets the write timeout
// afresh: a deploy may outlast one timeout, a stalled reader may not.
// Write errors are dropped: the client has gone, and the deploy goes on
// as it would without the stream.
func (p *progressStream) send(ev api.DeployEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev.Elapsed = float64(time.Since(p.start).Microseconds()) / 1e3
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	_ = p.rc.SetWriteDeadline(time.Now().Add(p.s.writeTimeout))
	if _, err := p.w.Write(append(b, '\n')); err != nil {
		return
	}
	_ = p.rc.Flush()
}
