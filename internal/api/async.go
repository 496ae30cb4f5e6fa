package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// HeaderIdempotencyKey, on POST /async/fn/NAME, is the id the client
// chooses for the invocation (1-64 of [A-Za-z0-9_-]): enqueueing the same
// key again returns the same invocation and does not run it twice.
const HeaderIdempotencyKey = "X-Idempotency-Key"

// HeaderInvocationID is the header the function receives with the id of
// the asynchronous invocation it runs, so that it can notice a repeat
// (delivery is at least once).
const HeaderInvocationID = "Thaw-Invocation-Id"

// AsyncState is where an asynchronous invocation is in its lifecycle.
type AsyncState string

// The states of an AsyncResult. Done and failed are final.
const (
	// AsyncUnknown: no result under this id (never enqueued, or expired).
	AsyncUnknown AsyncState = "unknown"
	// AsyncPending: queued, waiting for a runner (or for a retry).
	AsyncPending AsyncState = "pending"
	AsyncRunning AsyncState = "running"
	// AsyncDone: the function answered, with any status (a 500 from the
	// function is a done invocation whose Status is 500).
	AsyncDone AsyncState = "done"
	// AsyncFailed: the invocation was given up (Error says why).
	AsyncFailed AsyncState = "failed"
)

// Final reports whether s is AsyncDone or AsyncFailed.
func (s AsyncState) Final() bool { return s == AsyncDone || s == AsyncFailed }

// AsyncAccepted is the answer to POST /async/fn/NAME (202 Accepted).
type AsyncAccepted struct {
	// ID names the invocation; Location is its result's path,
	// /async/results/ID (also in the Location header).
	ID       string `json:"id"`
	Location string `json:"location"`
}

// AsyncResult is GET /async/results/ID: the stored state of an
// asynchronous invocation (internal/async keeps it in a KV bucket).
type AsyncResult struct {
	ID       string     `json:"id"`
	State    AsyncState `json:"state"`
	Function string     `json:"function,omitempty"`
	// Attempts is the number of runs started so far.
	Attempts int `json:"attempts,omitempty"`
	// Worker is the worker that ran (or is running) the last attempt.
	Worker   string    `json:"worker,omitempty"`
	Enqueued time.Time `json:"enqueued,omitzero"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// The function's response, when done. Body holds at most the queue's
	// result body limit (256 KiB by default); Truncated says the rest was
	// dropped.
	Status    int         `json:"status,omitempty"`
	Header    http.Header `json:"header,omitempty"`
	Body      []byte      `json:"body,omitempty"`
	Truncated bool        `json:"truncated,omitempty"`
	// Error is why the invocation failed or why the last attempt did.
	Error string `json:"error,omitempty"`
}

// AsyncPath is the path of asynchronous invocation id's result.
func AsyncPath(id string) string { return "/async/results/" + url.PathEscape(id) }

// InvokeAsync queues an invocation of a function and returns its id; key,
// if set, is the client's idempotency key (HeaderIdempotencyKey). Mode and
// DropCache of ir are not sent: they are experiments on a synchronous call.
func (c *Client) InvokeAsync(ctx context.Context, name string, ir *InvokeRequest, key string) (*AsyncAccepted, error) {
	req, err := c.newRequest(ctx, ir.method(), "/async/fn/"+url.PathEscape(name)+ir.path(), bytes.NewReader(ir.Body))
	if err != nil {
		return nil, err
	}
	addHeaders(req.Header, ir.Header)
	if key != "" {
		req.Header.Set(HeaderIdempotencyKey, key)
	}
	_, body, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke %s asynchronously: %w", name, err)
	}
	var acc AsyncAccepted
	if err := json.Unmarshal(body, &acc); err != nil || acc.ID == "" {
		return nil, fmt.Errorf("invoke %s asynchronously: bad answer %q: %w", name, body, errdefs.ErrUnavailable)
	}
	return &acc, nil
}

// AsyncResult returns the state of asynchronous invocation id (an error
// wrapping errdefs.ErrNotFound for an unknown or expired id).
func (c *Client) AsyncResult(ctx context.Context, id string) (*AsyncResult, error) {
	var res AsyncResult
	if err := c.getJSON(ctx, AsyncPath(id), &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// WaitAsync polls asynchronous invocation id every poll until its result
// is final or ctx ends.
func (c *Client) WaitAsync(ctx context.Context, id string, poll time.Duration) (*AsyncResult, error) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		res, err := c.AsyncResult(ctx, id)
		if err != nil || res.State.Final() {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("invocation %s still %s: %w", id, res.State, errdefs.ErrTimeout)
		case <-t.C:
		}
	}
}
