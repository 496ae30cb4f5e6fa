// Package testproc freezes processes for tests that need one stopped (a
// pager that must not answer page faults for a while).
package testproc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Stop sends SIGSTOP to pid and returns once every thread of it is
// stopped. kill(2) returns before the group stop reaches every thread: a
// thread still running (on another CPU, or a vCPU the host has not
// scheduled yet) may serve one more page fault, and a test that expects
// none while the process is stopped would see an answer.
func Stop(t testing.TB, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("testproc: stop %d: %v", pid, err)
	}
	for deadline := time.Now().Add(10 * time.Second); !Stopped(pid); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("testproc: process %d not stopped 10 s after SIGSTOP", pid)
		}
	}
}

// Stopped reports whether every thread of pid is stopped (state T in
// /proc/PID/task/*/stat).
func Stopped(pid int) bool {
	stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil || !strings.Contains(string(b), ") T ") {
			return false
		}
	}
	return len(stats) > 0
}
