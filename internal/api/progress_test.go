package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

func TestAcceptsProgress(t *testing.T) {
	for accept, want := range map[string]bool{
		"application/x-ndjson":                         true,
		"application/json, application/x-ndjson;q=0.9": true,
		"application/json":                             false,
		"":                                             false,
		"application/x-ndjsonx":                        false,
	} {
		if got := AcceptsProgress(accept); got != want {
			t.Errorf("AcceptsProgress(%q) = %v, want %v", accept, got, want)
		}
	}
}

// A stream ends with done (the function) or error (the failure, with its
// category); anything else (cut short, a line that is not an event, done
// without the function) is the connection's fault: unavailable.
func TestReadDeployEvents(t *testing.T) {
	info := `{"stage":"done","elapsed_ms":9,"info":{"name":"fn"}}`
	for _, tc := range []struct {
		name, stream string
		stages       string
		wantErr      error
		wantStatus   int
	}{
		{"done", `{"stage":"received","elapsed_ms":1}` + "\n" + `{"stage":"compile","elapsed_ms":2}` + "\n" + info + "\n", "received compile done", nil, 0},
		{"error", `{"stage":"received"}` + "\n" + `{"stage":"error","error":"boom at init","category":"guest_fault","status":502}` + "\n", "received error", errdefs.ErrGuest, 502},
		{"cut short", `{"stage":"received"}` + "\n" + `{"stage":"boot"}` + "\n", "received boot", errdefs.ErrUnavailable, 0},
		{"not an event", `{"stage":"received"}` + "\n<html>\n", "received", errdefs.ErrUnavailable, 0},
		{"no stage", `{}` + "\n", "", errdefs.ErrUnavailable, 0},
		{"done without info", `{"stage":"done"}` + "\n", "done", errdefs.ErrUnavailable, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stages []string
			got, err := ReadDeployEvents(strings.NewReader(tc.stream), func(ev DeployEvent) { stages = append(stages, string(ev.Stage)) })
			if s := strings.Join(stages, " "); s != tc.stages {
				t.Errorf("stages %q, want %q", s, tc.stages)
			}
			if tc.wantErr == nil {
				if err != nil || got == nil || got.Name != "fn" {
					t.Errorf("= %+v, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || got != nil {
				t.Errorf("= %+v, %v, want %v", got, err, tc.wantErr)
			}
			var e *Error
			if tc.wantStatus != 0 && (!errors.As(err, &e) || e.Status != tc.wantStatus || e.Message != "boom at init") {
				t.Errorf("error %#v", err)
			}
		})
	}
}

// DeployProgress asks for the stream, and takes a plain JSON answer (a
// server without the stream) as Deploy does, with no events.
func TestDeployProgressClient(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if AcceptsProgress(r.Header.Get("Accept")) && r.URL.Path == "/v1/functions/streamed" {
			w.Header().Set("Content-Type", ContentTypeProgress)
			_, _ = w.Write([]byte(`{"stage":"received"}` + "\n" + `{"stage":"done","info":{"name":"streamed"}}` + "\n"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(FunctionInfo{Name: "plain"})
	}))
	defer ts.Close()
	c := &Client{BaseURL: ts.URL}
	for name, want := range map[string]int{"streamed": 2, "plain": 0} {
		n := 0
		info, err := c.DeployProgress(context.Background(), name, []byte("\x00asm"), Config{}, func(DeployEvent) { n++ })
		if err != nil || info.Name != name || n != want {
			t.Errorf("%s: %+v, %v after %d events, want %d", name, info, err, n, want)
		}
	}
}
