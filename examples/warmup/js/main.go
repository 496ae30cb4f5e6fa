// Command js is a thaw warm-up workload: a JavaScript program run by goja that compiles scripts on first use and tiers hot functions up into a memo cache, like a JIT.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
