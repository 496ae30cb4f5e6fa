// Package build compiles a function into a thaw module: a wasip1 reactor
// (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared). It is what
// `thaw build` and `thaw demo` run. A JavaScript function (handler.js) is
// built as a Go program that embeds the script and links the JavaScript
// runtime, sdk/js, which the binary carries and installs like the SDK.
//
// It also supplies the Go SDK, which no public module proxy serves: the
// binary carries the SDK's source (sdk/go's SourceFS), InstallSDK writes it
// into the user's cache, and a function's go.mod replaces the SDK's module
// path with that directory (`thaw new` writes such a go.mod). Module writes
// the SDK there again if the cache was cleared.
package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// GoTool returns the path of the go command on PATH. It fails with
// errdefs.ErrUnavailable and an explanation when there is none.
func GoTool() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the Go toolchain (go 1.24 or later) is needed to build functions but `go` is not on PATH; install it from https://go.dev/dl: %w", errdefs.ErrUnavailable)
	}
	return p, nil
}

// Module compiles the function at path to the wasm module out: the Go
// package in the directory path (package main calling thaw.Handle from
// init), or a JavaScript function, which is a .js file or a directory
// holding handler.js and no go.mod (see JSScript). The compiler's output
// goes into the error on failure.
func Module(ctx context.Context, path, out string) error {
	gotool, err := GoTool()
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("build %s: %v: %w", path, err, errdefs.ErrNotFound)
	}
	if script := JSScript(path); script != "" {
		return moduleJS(ctx, gotool, script, out)
	}
	if !st.IsDir() {
		return fmt.Errorf("build %s: not a directory or a .js file: %w", path, errdefs.ErrInvalid)
	}
	if err := supplySDK(ctx, gotool, path); err != nil {
		return err
	}
	if err := goBuild(ctx, gotool, path, out, nil, nil); err != nil {
		return fmt.Errorf("build %s: %w", path, err)
	}
	return nil
}

// goBuild runs go build for wasip1 in dir, writing the module out, with
// extra flags and environment. A failure of the go command itself (the
// compiler rejected the code) is a *goFailure holding its output.
func goBuild(ctx context.Context, gotool, dir, out string, flags, env []string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	}
	args := append(append([]string{"build", "-buildmode=c-shared"}, flags...), "-o", abs, ".")
	cmd := exec.CommandContext(ctx, gotool, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0"), env...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(output.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &goFailure{output: msg}
		}
		return fmt.Errorf("%v\n%s", err, msg)
	}
	return nil
}

// goFailure is a go build that ran and failed: for a Go function, the
// caller's code is at fault (errdefs.ErrInvalid).
type goFailure struct{ output string }

func (e *goFailure) Error() string { return "\n" + e.output }
func (e *goFailure) Unwrap() error { return errdefs.ErrInvalid }

// GoModPath returns a clean path as a go.mod token: bare unless it holds
// a blank or a quote, which would end a bare token.
func GoModPath(path string) string {
	if strings.ContainsAny(path, " \t\"'`\\") {
		return strconv.Quote(path)
	}
	return path
}

// DefaultOutput is the module path `thaw build PATH` writes without -o:
// the directory's base name with .wasm, in the current directory (for a
// .js file, its directory's).
func DefaultOutput(dir string) string {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	name := filepath.Base(abs)
	if name == "." || name == string(filepath.Separator) || name == "" {
		name = "function"
	}
	return name + ".wasm"
}
