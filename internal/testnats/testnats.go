// Package testnats gives a test an embedded NATS server with JetStream, in
// process and without ports, and connections to it: the unit tests of the
// packages built on NATS (async invocations, the peer chunk tier) run
// against a real server, not a mock.
package testnats

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Start starts a server with JetStream (file storage in a temporary
// directory) that listens on no port; it is shut down when the test ends.
func Start(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName: "test",
		DontListen: true,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		t.Fatalf("testnats: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("testnats: server not ready within 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens an in-process connection to s, closed when the test ends.
// Each call is a separate client, as two workers would be: closing one
// (to play a worker that died) leaves the others connected.
func Connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(s), nats.NoReconnect())
	if err != nil {
		t.Fatalf("testnats: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
