// Command lazymodel is a thaw warm-up workload: it loads its 32 MiB model
// shard by shard as requests first need each shard, then serves cheaply.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
