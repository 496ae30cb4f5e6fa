package report

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Machine describes the host a run measured; results are only comparable
// on like machines, so every run directory records it.
type Machine struct {
	CPUModel    string `json:"cpu_model"`
	Cores       int    `json:"cores"`
	MemoryBytes uint64 `json:"memory_bytes"`
	Kernel      string `json:"kernel"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
}

// Meta is the content of meta.json.
type Meta struct {
	// Title names the run in report.html.
	Title     string    `json:"title"`
	Started   time.Time `json:"started"`
	Machine   Machine   `json:"machine"`
	GoVersion string    `json:"go_version"`
	// GitCommit is the source revision, empty when unknown; GitModified
	// says the tree had uncommitted changes (when known).
	GitCommit   string `json:"git_commit,omitempty"`
	GitModified bool   `json:"git_modified,omitempty"`
	Seed        uint64 `json:"seed"`
	// Config is the run's configuration as the caller has it.
	Config any `json:"config,omitempty"`
	// Attribution must be shown with results derived from licensed data,
	// such as trace.Attribution for the Azure trace.
	Attribution string `json:"attribution,omitempty"`
}

// CollectMeta describes this machine and build, with the caller's title,
// configuration and seed.
func CollectMeta(title string, config any, seed uint64) Meta {
	m := Meta{
		Title: title, Started: time.Now().UTC(), GoVersion: runtime.Version(), Seed: seed, Config: config,
		Machine: Machine{CPUModel: cpuModel(), Cores: runtime.NumCPU(), MemoryBytes: memTotal(), OS: runtime.GOOS, Arch: runtime.GOARCH},
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Machine.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	m.GitCommit, m.GitModified = gitRevision()
	return m
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func memTotal() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// gitRevision prefers the revision stamped into the binary and falls back
// to asking git about the working directory (builds with -buildvcs=false
// and `go test` carry no stamp).
func gitRevision() (string, bool) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev string
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			return rev, modified
		}
	}
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(out)), false
}
