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
	for _, lang := range []string{"go", "js"} {
		for _, t := range scaffold.Templates(lang) {
			fmt.Fprintf(&list, "\n  --lang %s --template %-10s %s", lang, t.Name, t.Summary)
		}
	}
	cmd := &cobra.Command{
		Use:   "new NAME",
		Short: "Write a new function's directory, ready to test, build and deploy",
		Long: `Write the directory NAME (which must not exist or be empty) holding a
function. NAME's base name is the name to deploy it under.

A Go function (--lang go, the default): main.go registers the handler with
the SDK, handler.go holds it (plain net/http), handler_test.go tests it
natively with go test, and go.mod takes the SDK from the copy this binary
carries, written to the user's cache directory, so nothing is fetched from
the network. NAME's base name is the module's path.

A JavaScript function (--lang js): handler.js, which exports
{ async fetch(request) } returning a Response, as in Cloudflare Workers or
Deno; handler.test.mjs tests it natively with Node's test runner
(node --test, Node 18 or later; package.json makes handler.js an ES module
for Node). thaw build compiles it into a module with a JavaScript engine.

Templates (the first of each language is the default):` + list.String(),
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := scaffold.New(args[0], opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "wrote %s (%s template %s): %s\n", res.Dir, res.Template.Lang, res.Template.Name, strings.Join(res.Files, " "))
			if res.SDKDir != "" {
				fmt.Fprintf(g.stdout, "the Go SDK is in %s\n", res.SDKDir)
			}
			fmt.Fprintf(g.stdout, "\nnext:\n  cd %s\n", filepath.Clean(res.Dir))
			if res.Template.Lang == "go" {
				fmt.Fprintf(g.stdout, "  go test ./...\n")
			} else {
				fmt.Fprintf(g.stdout, "  node --test    # with Node.js 18 or later\n")
			}
			fmt.Fprintf(g.stdout, "  thaw build .\n")
			fmt.Fprintf(g.stdout, "  thaw deploy %s %[1]s.wasm\n  thaw invoke %[1]s %s\n", res.Name, res.Template.Try)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Lang, "lang", "go", "the function's language: go or js")
	cmd.Flags().StringVarP(&opts.Template, "template", "t", "", "the template to start from (see above; default: the language's first)")
	return cmd
}
