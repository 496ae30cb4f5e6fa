// Command faulty is a thaw function that misbehaves on purpose, for the
// platform's bad-input tests: see Handler for its routes.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() {
	thaw.Handle(Handler())
	thaw.OnIdle(onIdle)
	thaw.OnRestore(onRestore)
}

func main() {}
