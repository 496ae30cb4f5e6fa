package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// resultOptions are the flags of `thaw result`.
type resultOptions struct {
	Wait    bool
	Timeout time.Duration
	JSON    bool
	Verbose bool
}

func newResultCommand(g *globalOptions) *cobra.Command {
	var opts resultOptions
	cmd := &cobra.Command{
		Use:   "result ID",
		Short: "Print the result of an asynchronous invocation",
		Long: `Print the response body of the asynchronous invocation ID (from
"thaw invoke --async"), once it is done. --wait polls until it is done or
failed (at most --timeout); without it an invocation still pending or running
exits 7. -v prints the state, attempts, worker and status to stderr; --json
prints the whole result document instead of the body.

Exits 1 when the function answered with a 4xx or 5xx status or the
invocation failed, 3 for an unknown or expired id.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, c := args[0], g.client()
			var res *api.AsyncResult
			var err error
			if opts.Wait {
				ctx, cancel := context.WithTimeout(cmd.Context(), opts.Timeout)
				defer cancel()
				res, err = c.WaitAsync(ctx, id, 200*time.Millisecond)
			} else {
				res, err = c.AsyncResult(cmd.Context(), id)
			}
			if err != nil {
				return err
			}
			if opts.JSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			}
			if opts.Verbose {
				fmt.Fprintf(g.stderr, "< %s (attempts %d, worker %s)\n", res.State, res.Attempts, res.Worker)
				if res.State == api.AsyncDone {
					fmt.Fprintf(g.stderr, "< %d %s\n", res.Status, http.StatusText(res.Status))
				}
			}
			switch res.State {
			case api.AsyncDone:
			case api.AsyncFailed:
				return fmt.Errorf("invocation %s failed: %s", id, res.Error)
			default:
				return fmt.Errorf("invocation %s is %s (thaw result --wait waits for it): %w", id, res.State, errdefs.ErrTimeout)
			}
			if !opts.JSON {
				if _, err := g.stdout.Write(res.Body); err != nil {
					return err
				}
			}
			if res.Status >= 400 {
				return fmt.Errorf("function %s answered %d %s", res.Function, res.Status, http.StatusText(res.Status))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.Wait, "wait", false, "wait until the invocation is done or failed")
	f.DurationVar(&opts.Timeout, "timeout", 10*time.Minute, "with --wait: how long to wait")
	f.BoolVar(&opts.JSON, "json", false, "print the result document (JSON) instead of the body")
	f.BoolVarP(&opts.Verbose, "verbose", "v", false, "print state, attempts, worker and status to stderr")
	return cmd
}
