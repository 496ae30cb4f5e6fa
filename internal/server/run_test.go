package server

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/worker"
)

// Start serves a worker on a free loopback port until Close, which ends
// the HTTP server with http.ErrServerClosed.
func TestStartAndClose(t *testing.T) {
	rs, err := Start(context.Background(), RunOptions{Addr: "127.0.0.1:0", Worker: worker.Options{DataDir: t.TempDir(), NoPager: true}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(rs.URL + "/healthz")
	if err != nil {
		rs.Close(time.Second)
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("/healthz answered %d", res.StatusCode)
	}
	if err := rs.Close(5 * time.Second); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-rs.Done():
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("server stopped with %v, want ErrServerClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server still running after Close")
	}
	if _, err := Start(context.Background(), RunOptions{Addr: "256.0.0.1:0", Worker: worker.Options{DataDir: t.TempDir(), NoPager: true}}); err == nil {
		t.Error("Start on a bad address succeeded")
	}
}
