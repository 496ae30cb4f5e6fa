package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Errors from something in front of the server (no X-Thaw-Error) get the
// category of their status; a function's own error status is an answer,
// not an error; a malformed Server-Timing is an error of no category (the
// server's fault, not the caller's), with the answer still returned.
func TestClientAgainstOtherAnswers(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/functions":
			http.Error(w, "bad gateway", http.StatusBadGateway)
		case "/fn/own/":
			w.Header().Set(HeaderServerTiming, `exec;dur=1`)
			w.WriteHeader(http.StatusNotFound)
		case "/fn/odd/":
			w.Header().Set(HeaderServerTiming, `exec;dur=fast`)
		case "/fn/platform/":
			w.Header().Set(HeaderError, "overloaded")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error": "queue full"}`))
		}
	}))
	defer ts.Close()
	c := &Client{BaseURL: ts.URL}
	ctx := context.Background()
	var e *Error
	if _, err := c.List(ctx); !errors.Is(err, errdefs.ErrGuest) || !errors.As(err, &e) || e.Status != 502 || e.Message != "bad gateway" {
		t.Errorf("proxy 502: %v", err)
	}
	if res, err := c.Invoke(ctx, "own", &InvokeRequest{}); err != nil || res.Status != 404 || len(res.Timing) != 1 {
		t.Errorf("function's own 404: %+v, %v", res, err)
	}
	res, err := c.Invoke(ctx, "odd", &InvokeRequest{})
	if err == nil || res == nil || res.Status != 200 || errdefs.Category(err) != "internal" {
		t.Errorf("malformed Server-Timing: %+v, %v (category %s)", res, err, errdefs.Category(err))
	}
	if _, err := c.Invoke(ctx, "platform", &InvokeRequest{}); !errors.Is(err, errdefs.ErrOverloaded) || !errors.As(err, &e) || e.Message != "queue full" {
		t.Errorf("platform 429: %v", err)
	}
}
