package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/async"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Async is what the server needs for asynchronous invocations (a
// *coord.Coordinator, over the cluster's work queue): ANY
// /async/fn/{name}/... and GET /async/results/{id}.
type Async interface {
	// Enqueue queues inv durably and returns its id.
	Enqueue(ctx context.Context, inv async.Invocation) (string, error)
	// Result returns the state of invocation id (ErrNotFound: unknown or
	// expired).
	Result(ctx context.Context, id string) (*async.Result, error)
}

// invokeAsync serves ANY /async/fn/{name}/{rest...}: the request as
// /fn/{name}/{rest...} would pass it to the function, queued, answered 202
// with the invocation's id and its result's path (also in Location).
// The caller's rights are those of a synchronous invocation.
func (s *Server) invokeAsync(a Async) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		authed := s.authorized(r)
		if !authed && !s.b.Public(name) {
			s.writeError(w, r, errUnauthorized(fmt.Sprintf("function %q", name)))
			return
		}
		if _, err := s.b.Get(name); err != nil {
			s.writeError(w, r, err)
			return
		}
		if r.Header.Get(api.HeaderMode) != "" || r.Header.Get(api.HeaderDropCache) != "" {
			s.writeError(w, r, fmt.Errorf("the %s and %s headers apply to synchronous invocations only: %w", api.HeaderMode, api.HeaderDropCache, errdefs.ErrInvalid))
			return
		}
		req, reserved, err := s.request(w, r, authed, "/async/fn/")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		defer s.bodies.release(reserved)
		id, err := a.Enqueue(r.Context(), async.Invocation{ID: r.Header.Get(api.HeaderIdempotencyKey), Function: name,
			Method: req.Method, Path: req.Path, Query: req.RawQuery, Header: req.Header, Body: req.Body})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		loc := api.AsyncPath(id)
		w.Header().Set("Location", loc)
		writeJSON(w, http.StatusAccepted, api.AsyncAccepted{ID: id, Location: loc})
	}
}

// asyncResult serves GET /async/results/{id}. Without the token only the
// results of public functions are shown; unknown ids and private results
// both answer 401 then, so an id reveals nothing to a caller without the
// token.
func (s *Server) asyncResult(a Async) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		liftReadDeadline(w)
		id := r.PathValue("id")
		res, err := a.Result(r.Context(), id)
		if !s.authorized(r) && (err != nil || !s.b.Public(res.Function)) {
			s.writeError(w, r, errUnauthorized("asynchronous invocation "+id))
			return
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}
