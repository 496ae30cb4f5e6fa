package integration

import (
	"regexp"
	"strings"
	"testing"
)

// stageLine is one line of thaw deploy's progress on stderr: the stage and
// its duration.
var stageLine = regexp.MustCompile(`(?m)^deploy (\S+): (\S+).*\s(\d+\.\d)s$`)

// thaw deploy --verbose prints each stage of the deploy to stderr as the
// server's progress stream reports it, in order, with its duration;
// without --verbose (stderr is not a terminal here) it prints none; stdout
// is the one line scripts parse either way. A deploy the server refuses
// after the stream began exits with the error's code.
func TestDeployProgress(t *testing.T) {
	p := shared(t)
	_, path := module(t, "examples/initheavy")
	code, stdout, stderr := cli(t, p, "deploy", "progress", path, "--verbose")
	t.Cleanup(func() { cli(t, p, "rm", "progress") })
	if code != 0 || !strings.HasPrefix(stdout, "deployed progress: ") || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("deploy --verbose: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var stages []string
	for _, m := range stageLine.FindAllStringSubmatch(stderr, -1) {
		if m[1] != "progress" {
			t.Errorf("line names %q", m[0])
		}
		stages = append(stages, m[2])
	}
	if got, want := strings.Join(stages, " "), "upload wait compile boot snapshot commit"; got != want {
		t.Errorf("stages %q, want %q; stderr:\n%s", got, want, stderr)
	}

	code, stdout, stderr = cli(t, p, "deploy", "progress", path)
	if code != 0 || !strings.HasPrefix(stdout, "deployed progress: ") || stderr != "" {
		t.Errorf("deploy: exit %d, stdout %q, stderr %q (want no progress off a terminal)", code, stdout, stderr)
	}

	// --mode cold: no snapshot stage.
	code, _, stderr = cli(t, p, "deploy", "progress", path, "--mode", "cold", "-v")
	if code != 0 || strings.Contains(stderr, ": snapshot") || !strings.Contains(stderr, ": boot") {
		t.Errorf("deploy --mode cold: exit %d, stderr %q", code, stderr)
	}
}
