package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/build"
	"github.com/thaw-run/thaw/internal/report"
)

func newBuildCommand(g *globalOptions) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "build DIR|FILE.js",
		Short: "Compile a function to a thaw module (wasip1 reactor)",
		Long: `Compile the Go package in DIR (package main calling thaw.Handle from init)
with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared. Needs the Go
toolchain on PATH.

A JavaScript function, FILE.js or a directory holding handler.js and no
go.mod, is built the same way: a Go program that embeds the script and runs
it in a JavaScript engine (goja), which comes from the Go module cache or
the module proxy.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				out = build.DefaultOutput(args[0])
			}
			act := report.NewActivity(g.stderr, fmt.Sprintf("building %s: go build for wasip1", args[0]))
			err := build.Module(cmd.Context(), args[0], out)
			act.Done()
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "module file to write (default DIR's name + .wasm)")
	return cmd
}
