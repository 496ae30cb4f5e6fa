package cli

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thaw-run/thaw/internal/scaffold"
)

func newNewCommand(g *globalOptions) *cobra.Command {
	var opts scaffold.Options
	var list strings.Builder
	for _, t := range scaffold.Templates() {
		fmt.Fprintf(&list, "\n  %-10s %s", t.Name, t.Summary)
	}
	cmd := &cobra.Command{
		Use:   "new NAME",
		Short: "Write a new function's directory, ready to test, build and deploy",
		Long: `Write the directory NAME (which must not exist or be empty) holding a Go
function: main.go registers the handler with the SDK, handler.go holds it
(plain net/http), handler_test.go tests it natively with go test, and go.mod
takes the SDK from the copy this binary carries, written to the user's cache
directory, so nothing is fetched from the network. NAME's base name is the
module's path and the name to deploy it under. Templates:` + list.String() + `

JavaScript functions (--lang js) are not available yet.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := scaffold.New(args[0], opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "wrote %s (template %s): %s\n", res.Dir, res.Template.Name, strings.Join(res.Files, " "))
			fmt.Fprintf(g.stdout, "the Go SDK is in %s\n\nnext:\n", res.SDKDir)
			fmt.Fprintf(g.stdout, "  cd %s\n  go test ./...\n  thaw build .\n", filepath.Clean(res.Dir))
			fmt.Fprintf(g.stdout, "  thaw deploy %s %[1]s.wasm\n  thaw invoke %[1]s %s\n", res.Name, res.Template.Try)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Lang, "lang", "go", "the function's language (go; js is not available yet)")
	cmd.Flags().StringVarP(&opts.Template, "template", "t", scaffold.Templates()[0].Name, "the template to start from (see above)")
	return cmd
}
