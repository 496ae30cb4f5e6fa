package testproc

import (
	"os/exec"
	"testing"
)

// A running child is not stopped; after Stop every thread of it is.
func TestStop(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	if Stopped(pid) {
		t.Fatal("a sleeping process reported stopped")
	}
	Stop(t, pid)
	if !Stopped(pid) {
		t.Fatal("not stopped after Stop")
	}
	if Stopped(1 << 30) {
		t.Fatal("a process that does not exist reported stopped")
	}
}
