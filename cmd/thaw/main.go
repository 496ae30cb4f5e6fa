// Command thaw is thaw's single binary: the CLI, the worker server
// (`thaw serve`), and, re-executed by the worker, its userfaultfd pager.
package main

import (
	"os"

	"github.com/thaw-run/thaw/internal/cli"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/store/stack"
)

func main() {
	// The pager process is this binary re-executed; it must take over
	// before anything else runs.
	pager.RunIfChild(stack.OpenReaderJSON)
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
