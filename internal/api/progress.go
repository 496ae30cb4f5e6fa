package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// ContentTypeProgress is the media type of a deploy's progress stream:
// newline-delimited JSON, one DeployEvent a line. A deploy request whose
// Accept header lists it gets the stream instead of one JSON body.
const ContentTypeProgress = "application/x-ndjson"

// DeployStage names a step of a deploy.
type DeployStage string

// The stages of a deploy, in the order a stream reports them. Each event
// says that its stage has begun, so it also ends the one before: the
// stage's duration is the next event's Elapsed minus its own.
const (
	// StageReceived: the server has read the module and the configuration
	// (the upload is over); the deploy waits for any other deploy of the
	// same name.
	StageReceived DeployStage = "received"
	// StageCompile: the worker compiles the module (wazero's compiler, or
	// its on-disk cache).
	StageCompile DeployStage = "compile"
	// StageBoot: the worker instantiates the module and runs its
	// initialisation (_initialize): for initheavy, most of a deploy.
	StageBoot DeployStage = "boot"
	// StageSnapshot: the worker captures the booted instance's memory and
	// writes the snapshot (absent with restore mode cold).
	StageSnapshot DeployStage = "snapshot"
	// StageCommit: the worker writes the module and the registry entry and
	// replaces an earlier deploy of the name.
	StageCommit DeployStage = "commit"
	// StageDone ends a successful stream; its event carries Info.
	StageDone DeployStage = "done"
	// StageError ends a failed stream; its event carries the error and its
	// category and status, as an error response would.
	StageError DeployStage = "error"
)

// DeployEvent is one line of a deploy's progress stream.
type DeployEvent struct {
	Stage DeployStage `json:"stage"`
	// Elapsed is the time since the server began the request, in
	// milliseconds.
	Elapsed float64 `json:"elapsed_ms"`
	// Info is the deployed function (StageDone only).
	Info *FunctionInfo `json:"info,omitempty"`
	// Error, Category and Status describe a failure (StageError only): the
	// message, the HeaderError category and the HTTP status a response
	// without the stream would have had.
	Error    string `json:"error,omitempty"`
	Category string `json:"category,omitempty"`
	Status   int    `json:"status,omitempty"`
}

// Err returns the failure an error event reports, as the Client reports
// an error response (an *Error, whose category errors.Is recognises), or
// nil for any other event.
func (e DeployEvent) Err() error {
	if e.Stage != StageError {
		return nil
	}
	return &Error{Status: e.Status, Category: e.Category, Message: e.Error}
}

// AcceptsProgress reports whether an Accept header value lists
// ContentTypeProgress.
func AcceptsProgress(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == ContentTypeProgress {
			return true
		}
	}
	return false
}

// maxEventLine bounds one line of a progress stream: a FunctionInfo or an
// error message, far below it.
const maxEventLine = 1 << 20

// ReadDeployEvents reads a progress stream from r, calling fn (if not
// nil) with each event as it arrives, and returns the function the final
// done event carries, or the failure the final error event reports. A
// stream that ends without either, or holds a line that is not an event,
// fails with errdefs.ErrUnavailable: the server or the connection broke
// off.
func ReadDeployEvents(r io.Reader, fn func(DeployEvent)) (*FunctionInfo, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventLine)
	for sc.Scan() {
		var ev DeployEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Stage == "" {
			return nil, fmt.Errorf("deploy progress: bad line %.80q: %w", sc.Text(), errdefs.ErrUnavailable)
		}
		if fn != nil {
			fn(ev)
		}
		switch ev.Stage {
		case StageDone:
			if ev.Info == nil {
				return nil, fmt.Errorf("deploy progress: done without the function: %w", errdefs.ErrUnavailable)
			}
			return ev.Info, nil
		case StageError:
			return nil, ev.Err()
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("deploy progress: %v: %w", err, errdefs.ErrUnavailable)
	}
	return nil, fmt.Errorf("deploy progress: the stream ended before the deploy did: %w", errdefs.ErrUnavailable)
}
