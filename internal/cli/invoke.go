package cli

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
)

// invokeOptions are the flags of `thaw invoke`.
type invokeOptions struct {
	Data      string
	Method    string
	Headers   []string
	Mode      string
	DropCache bool
	Verbose   bool
	// Async queues the invocation (POST /async/fn/NAME) and prints its
	// id; Key is its idempotency key.
	Async bool
	Key   string
}

func newInvokeCommand(g *globalOptions) *cobra.Command {
	var opts invokeOptions
	cmd := &cobra.Command{
		Use:   "invoke NAME [PATH]",
		Short: "Call a function and print its response body",
		Long: `Send an HTTP request to function NAME at PATH (default "/", may include a
query) and print the response body. -v also prints the status, how the
instance started and the Server-Timing breakdown to stderr.

--mode starts a fresh instance in that restore mode (or "warm" to reuse one);
--drop-cache evicts the snapshot from the page cache first. Both need the
management token when the server has one.

Exits 1 when the function answers with a 4xx or 5xx status.

--async queues the invocation instead (docs/cluster-async.md): a worker with
spare capacity runs it later, and the id printed is what "thaw result ID"
takes. --idempotency-key names it: queueing the same key again does not run
it twice.`,
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := opts.request(args)
			if err != nil {
				return err
			}
			if opts.Async {
				if req.Mode != "" || req.DropCache {
					return fmt.Errorf("--mode and --drop-cache apply to synchronous invocations only: %w", errdefs.ErrInvalid)
				}
				acc, err := g.client().InvokeAsync(cmd.Context(), args[0], req, opts.Key)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(g.stdout, acc.ID)
				return err
			}
			if opts.Key != "" {
				return fmt.Errorf("--idempotency-key needs --async: %w", errdefs.ErrInvalid)
			}
			res, err := g.client().Invoke(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if opts.Verbose {
				printTiming(g.stderr, res)
			}
			if _, err := g.stdout.Write(res.Body); err != nil {
				return err
			}
			if res.Status >= 400 {
				return fmt.Errorf("function %s answered %d %s", args[0], res.Status, http.StatusText(res.Status))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Data, "data", "d", "", "request body; @FILE reads it from FILE, @- from stdin")
	f.StringVarP(&opts.Method, "request", "X", "", "HTTP method (default GET, or POST with --data)")
	f.StringArrayVarP(&opts.Headers, "header", "H", nil, `request header "Key: value" (repeatable)`)
	f.StringVar(&opts.Mode, "mode", "", "start a fresh instance in this mode: cold, eager, mmap, lazy, reap, bulk, warm")
	f.BoolVar(&opts.DropCache, "drop-cache", false, "evict the snapshot from the page cache before restoring")
	f.BoolVarP(&opts.Verbose, "verbose", "v", false, "print status and Server-Timing to stderr")
	f.BoolVar(&opts.Async, "async", false, "queue the invocation and print its id (see thaw result)")
	f.StringVar(&opts.Key, "idempotency-key", "", "with --async: the invocation's id (1-64 of A-Z a-z 0-9 - _); the same key is run once")
	return cmd
}

func (o invokeOptions) request(args []string) (*api.InvokeRequest, error) {
	req := &api.InvokeRequest{Method: strings.ToUpper(o.Method), Header: http.Header{}, DropCache: o.DropCache}
	if len(args) > 1 {
		req.Path = args[1]
	}
	if o.Mode != "" {
		m, err := restore.ParseMode(o.Mode)
		if err != nil {
			return nil, fmt.Errorf("--mode: %w", err)
		}
		req.Mode = api.Mode(m)
	}
	for _, h := range o.Headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("header %q: want \"Key: value\": %w", h, errdefs.ErrInvalid)
		}
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	switch {
	case o.Data == "@-":
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		req.Body = b
	case strings.HasPrefix(o.Data, "@"):
		b, err := os.ReadFile(o.Data[1:])
		if err != nil {
			return nil, fmt.Errorf("--data: %v: %w", err, errdefs.ErrNotFound)
		}
		req.Body = b
	case o.Data != "":
		req.Body = []byte(o.Data)
	}
	return req, nil
}

// printTiming writes the status, start kind and Server-Timing stages.
func printTiming(w io.Writer, res *api.InvokeResponse) {
	fmt.Fprintf(w, "< %d %s\n< start: %s\n", res.Status, http.StatusText(res.Status), res.Start)
	if fb := res.Header.Get(api.HeaderFallback); fb != "" {
		fmt.Fprintf(w, "< fallback: %s\n", fb)
	}
	for _, m := range res.Timing {
		switch {
		case m.HasDur && m.Desc != "":
			fmt.Fprintf(w, "< %-9s %9.3f ms  (%s)\n", m.Name, m.Dur, m.Desc)
		case m.HasDur:
			fmt.Fprintf(w, "< %-9s %9.3f ms\n", m.Name, m.Dur)
		default:
			fmt.Fprintf(w, "< %-9s %s\n", m.Name, m.Desc)
		}
	}
}
