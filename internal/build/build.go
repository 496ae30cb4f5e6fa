// Package build compiles a Go function into a thaw module: a wasip1 reactor
// (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared). It is what
// `thaw build` and `thaw demo` run.
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

// Module compiles the Go package in dir (a directory holding package main
// that calls thaw.Handle) to the wasm module out. The compiler's output goes
// into the error on failure.
func Module(ctx context.Context, dir, out string) error {
	gotool, err := GoTool()
	if err != nil {
		return err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("build %s: %v: %w", dir, err, errdefs.ErrNotFound)
	}
	if !st.IsDir() {
		return fmt.Errorf("build %s: not a directory: %w", dir, errdefs.ErrInvalid)
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("build: output %s: %w", out, err)
	}
	if err := supplySDK(ctx, gotool, dir); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, gotool, "build", "-buildmode=c-shared", "-o", abs, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(output.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			// The compiler rejected the code: the caller's input is at fault.
			return fmt.Errorf("build %s:\n%s\n%w", dir, msg, errdefs.ErrInvalid)
		}
		return fmt.Errorf("build %s: %v\n%s", dir, err, msg)
	}
	return nil
}

// DefaultOutput is the module path `thaw build DIR` writes without -o: the
// directory's base name with .wasm, in the current directory.
func DefaultOutput(dir string) string {
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
