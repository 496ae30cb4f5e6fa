package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
	"github.com/thaw-run/thaw/internal/worker"
)

// A deploy asked for its progress streams the worker's stages as they
// begin, in order, then the function; a failure after the stream began is
// its final event, with the category and status an error response would
// have; a failure before it (a bad name) is an ordinary error response.
func TestDeployProgressStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and deploys a wasm module")
	}
	rs, err := Start(context.Background(), RunOptions{Addr: "127.0.0.1:0", Worker: worker.Options{DataDir: t.TempDir(), NoPager: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close(5 * time.Second) })
	c := &api.Client{BaseURL: rs.URL}
	ctx := context.Background()
	deploy := func(name string, wasm []byte, cfg api.Config) ([]api.DeployEvent, *api.FunctionInfo, error) {
		var evs []api.DeployEvent
		info, err := c.DeployProgress(ctx, name, wasm, cfg, func(ev api.DeployEvent) { evs = append(evs, ev) })
		return evs, info, err
	}
	stages := func(evs []api.DeployEvent) string {
		var s []string
		for i, ev := range evs {
			s = append(s, string(ev.Stage))
			if i > 0 && ev.Elapsed < evs[i-1].Elapsed {
				t.Errorf("event %d's elapsed time %.3f ms precedes the one before", i, ev.Elapsed)
			}
		}
		return strings.Join(s, " ")
	}

	hello := testwasm.Build(t, "examples/hello")
	for _, tc := range []struct {
		mode api.Mode
		want string
	}{
		{api.ModeBulk, "received compile boot snapshot commit done"},
		{api.ModeCold, "received compile boot commit done"},
	} {
		evs, info, err := deploy("hello", hello, api.Config{RestoreMode: tc.mode})
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		if got := stages(evs); got != tc.want {
			t.Errorf("%s: stages %q, want %q", tc.mode, got, tc.want)
		}
		if info.Name != "hello" || info.Config.RestoreMode != tc.mode || evs[len(evs)-1].Info.ModuleSHA != info.ModuleSHA {
			t.Errorf("%s: deployed %+v", tc.mode, info)
		}
		if (info.Snapshot != nil) != (tc.mode != api.ModeCold) {
			t.Errorf("%s: snapshot %+v", tc.mode, info.Snapshot)
		}
	}

	evs, _, err := deploy("bad", []byte("not wasm at all"), api.Config{})
	var ae *api.Error
	if !errors.Is(err, errdefs.ErrInvalid) || !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Errorf("garbage module: %v, want a 400 invalid", err)
	}
	if got := stages(evs); got != "received compile error" {
		t.Errorf("garbage module: stages %q", got)
	}
	if last := evs[len(evs)-1]; last.Category != "invalid" || last.Status != http.StatusBadRequest || last.Error == "" || last.Info != nil {
		t.Errorf("error event %+v", last)
	}

	evs, _, err = deploy("Not_A-Name!", hello, api.Config{})
	if !errors.Is(err, errdefs.ErrInvalid) || len(evs) != 0 {
		t.Errorf("bad name: %v after %d events, want an error response and no stream", err, len(evs))
	}
	if _, err := c.Get(ctx, "bad"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a failed deploy was registered: %v", err)
	}
}
