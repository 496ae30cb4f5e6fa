package testnet

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes TestHelper do what its value says, in a child process.
const helperEnv = "THAW_TESTNET_HELPER"

// TestHelper is not a test of its own: run as a child by the tests below,
// it builds a network of two hosts with a long sleep inside host 2 and
// then fails, panics or is killed as helperEnv says.
func TestHelper(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("run by TestCleanup")
	}
	nt := New(t, 2)
	if err := nt.Command(context.Background(), 2, "sleep", "4321").Start(); err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "fail":
		t.Fatal("forced failure")
	case "panic":
		panic("forced panic")
	case "kill":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
	}
}

// runHelper runs TestHelper in mode in a child process and returns its
// output; the child must fail.
func runHelper(t *testing.T, mode string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "--- SKIP: TestHelper") {
		t.Skipf("helper skipped:\n%s", out)
	}
	if err == nil {
		t.Fatalf("helper %s passed:\n%s", mode, out)
	}
	return string(out)
}

// leftovers lists what of a network exists: thaw-n* namespaces, thaw-v*
// and thawbr0 links, and sleep 4321 processes.
func leftovers(t *testing.T) []string {
	t.Helper()
	var left []string
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "thaw-n") {
			left = append(left, strings.Fields(l)[0])
		}
	}
	out, err = exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, "thaw-v") || name == "thawbr0" {
			left = append(left, name)
		}
	}
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && string(b) == "sleep\x004321\x00" {
			left = append(left, "sleep 4321 in "+p)
		}
	}
	slices.Sort(left)
	return left
}

// TestCleanup: a test that fails or panics leaves no namespace, link or
// process behind; one killed outright (as by go test -timeout) does, and
// the next New removes it before building its own network.
func TestCleanup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("testnet: network namespaces need root")
	}
	for _, mode := range []string{"fail", "panic"} {
		out := runHelper(t, mode)
		if !strings.Contains(out, "forced "+mode) {
			t.Fatalf("helper %s did not reach its failure:\n%s", mode, out)
		}
		// Another package's test may hold a network now: check under the lock.
		unlock := lock(t)
		left := leftovers(t)
		unlock()
		if len(left) > 0 {
			t.Fatalf("after a %s: left %v\n%s", mode, left, out)
		}
	}
	runHelper(t, "kill")
	nt := New(t, 1)
	left := leftovers(t)
	if !slices.Equal(left, []string{"thaw-n1", "thaw-v1", "thawbr0"}) {
		t.Fatalf("after a killed run and New(1): %v, want only thaw-n1, thaw-v1 and thawbr0", left)
	}
	if nt.Host(1).IP != "10.77.0.11" || nt.Host(1).URL != "http://10.77.0.11:8080" {
		t.Fatalf("host 1: %+v", nt.Host(1))
	}
}
