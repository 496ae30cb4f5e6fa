// Package cli is thaw's command line: one file per command, each built by a
// newXCommand function, with errors mapped to exit codes in one place
// (ExitCode).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Exit codes. Scripts can tell "the function does not exist" from "the
// server is down" without parsing messages.
const (
	ExitOK           = 0
	ExitFailure      = 1 // internal or uncategorised errors
	ExitUsage        = 2 // invalid arguments or input (errdefs.ErrInvalid)
	ExitNotFound     = 3
	ExitUnauthorized = 4
	ExitTooLarge     = 5
	ExitOverloaded   = 6
	ExitTimeout      = 7
	ExitGuest        = 8
	ExitUnavailable  = 9
	ExitCorrupt      = 10
	ExitConflict     = 11 // a cluster registry write lost its compare-and-swap
)

// ExitCode maps an error to the process exit code. It is the only place
// where error categories become exit codes.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errdefs.ErrInvalid):
		return ExitUsage
	case errors.Is(err, errdefs.ErrNotFound):
		return ExitNotFound
	case errors.Is(err, errdefs.ErrUnauthorized):
		return ExitUnauthorized
	case errors.Is(err, errdefs.ErrTooLarge):
		return ExitTooLarge
	case errors.Is(err, errdefs.ErrOverloaded):
		return ExitOverloaded
	case errors.Is(err, errdefs.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return ExitTimeout
	case errors.Is(err, errdefs.ErrGuest):
		return ExitGuest
	case errors.Is(err, errdefs.ErrUnavailable):
		return ExitUnavailable
	case errors.Is(err, errdefs.ErrCorrupt):
		return ExitCorrupt
	case errors.Is(err, errdefs.ErrConflict):
		return ExitConflict
	default:
		return ExitFailure
	}
}

// Main runs the thaw command line with args (without the program name) and
// returns the exit code. cmd/thaw's main is os.Exit(cli.Main(...)), so tests
// call Main directly.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "thaw: %v\n", err)
	}
	return ExitCode(err)
}

// globalOptions are the flags every command shares.
type globalOptions struct {
	Server string
	Token  string
	stdout io.Writer
	stderr io.Writer
}

// client returns an API client for the --server and --token flags.
func (g *globalOptions) client() *api.Client {
	return &api.Client{BaseURL: g.Server, Token: g.Token}
}

// NewRootCommand builds the thaw command tree writing to stdout and stderr.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globalOptions{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "thaw",
		Short: "Serverless functions with cold starts served from memory snapshots",
		Long: `thaw runs Go functions compiled to WebAssembly and starts new instances from
memory snapshots instead of booting them, in one of several restore modes
(cold, eager, mmap, lazy, reap, bulk) that it can measure against each other.

Start with "thaw demo"; write your own function with "thaw new NAME".`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// The command list stays the one the README documents.
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("%v: %w", err, errdefs.ErrInvalid)
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.Server, "server", envOr("THAW_SERVER", "http://127.0.0.1:8080"), "thaw server URL ($THAW_SERVER)")
	pf.StringVar(&g.Token, "token", os.Getenv("THAW_TOKEN"), "access token: required by the server's management API when it has one ($THAW_TOKEN)")
	root.AddCommand(
		newServeCommand(g),
		newNewCommand(g),
		newBuildCommand(g),
		newDeployCommand(g),
		newInvokeCommand(g),
		newResultCommand(g),
		newLsCommand(g),
		newRmCommand(g),
		newDemoCommand(g),
		newBenchCommand(g),
		newLoadCommand(g),
		newStoreCommand(g),
		newClusterCommand(g),
		newGatewayCommand(g),
	)
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// exactArgs is cobra.ExactArgs with the error in the invalid-input category.
func exactArgs(n int) cobra.PositionalArgs {
	return rangeArgs(n, n)
}

// rangeArgs is cobra.RangeArgs with the error in the invalid-input category.
func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			want := fmt.Sprint(lo)
			if hi != lo {
				want = fmt.Sprintf("%d to %d", lo, hi)
			}
			return fmt.Errorf("%s takes %s argument(s), got %d (usage: %s): %w",
				cmd.CommandPath(), want, len(args), strings.TrimSpace(cmd.UseLine()), errdefs.ErrInvalid)
		}
		return nil
	}
}
