package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// State is where an invocation is in its lifecycle (api.AsyncState: the
// API's clients read it).
type State = api.AsyncState

// The states of a Result. Done and Failed are final: no runner changes a
// final Result.
const (
	// StateUnknown: no Result under this id (never enqueued, or expired).
	StateUnknown = api.AsyncUnknown
	StatePending = api.AsyncPending
	StateRunning = api.AsyncRunning
	// StateDone: the function answered (with any status: a 500 from the
	// function is a done invocation whose Status is 500).
	StateDone = api.AsyncDone
	// StateFailed: the invocation was given up (Error says why).
	StateFailed = api.AsyncFailed
)

// Response is what a Handler returns: the function's HTTP response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Result is the stored state of an invocation, the document
// GET /async/results/ID returns (api.AsyncResult). Body holds at most
// Config.MaxResultBody bytes; Truncated says the rest was dropped.
type Result = api.AsyncResult

// Results reads and writes the results bucket.
type Results struct {
	kv      jetstream.KeyValue
	maxBody int
}

// Get returns the Result of invocation id. An id with no Result (never
// enqueued, or expired) returns a Result in StateUnknown and an error
// wrapping errdefs.ErrNotFound.
func (r *Results) Get(ctx context.Context, id string) (*Result, error) {
	res, _, err := r.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return &Result{ID: id, State: StateUnknown}, fmt.Errorf("async: invocation %q: %w", id, errdefs.ErrNotFound)
	}
	return res, nil
}

// get returns the Result of id and its revision, or nil and 0 if there is
// none.
func (r *Results) get(ctx context.Context, id string) (*Result, uint64, error) {
	if ValidID(id) != nil {
		return nil, 0, nil // no such key can exist
	}
	e, err := r.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("async: result %s: %w", id, unavailable(err))
	}
	var res Result
	if err := json.Unmarshal(e.Value(), &res); err != nil {
		return nil, 0, fmt.Errorf("async: result %s: %v: %w", id, err, errdefs.ErrCorrupt)
	}
	return &res, e.Revision(), nil
}

// create stores res unless a Result for its id exists already, and
// reports whether it did.
func (r *Results) create(ctx context.Context, res *Result) (bool, error) {
	v, err := json.Marshal(res)
	if err != nil {
		return false, fmt.Errorf("async: %w", err)
	}
	_, err = r.kv.Create(ctx, res.ID, v)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("async: result %s: %w", res.ID, unavailable(err))
	}
	return true, nil
}

// errFinal is returned by update when the Result is already final.
var errFinal = errors.New("async: result already final")

// update changes the Result of id to change(current) by compare-and-swap,
// retrying on a concurrent write; current is nil when there is none. It
// returns errFinal, changing nothing, when the Result is final.
func (r *Results) update(ctx context.Context, id string, change func(cur *Result) *Result) error {
	for range 8 {
		cur, rev, err := r.get(ctx, id)
		if err != nil {
			return err
		}
		if cur != nil && cur.State.Final() {
			return errFinal
		}
		next := change(cur)
		if next.Body != nil && len(next.Body) > r.maxBody {
			next.Body, next.Truncated = next.Body[:r.maxBody], true
		}
		v, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("async: %w", err)
		}
		if cur == nil {
			_, err = r.kv.Create(ctx, id, v)
		} else {
			_, err = r.kv.Update(ctx, id, v, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // someone else wrote first: look again
		}
		if err != nil {
			return fmt.Errorf("async: result %s: %w", id, unavailable(err))
		}
		return nil
	}
	return fmt.Errorf("async: result %s: too many concurrent writers: %w", id, errdefs.ErrUnavailable)
}
