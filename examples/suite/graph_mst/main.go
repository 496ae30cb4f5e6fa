// Command graph_mst is a thaw function: the SeBS graph-mst port: minimum spanning tree of a 100k-node Barabási–Albert graph.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
