// Command graph_bfs is a thaw function: the SeBS graph-bfs port: breadth-first search over a 100k-node Barabási–Albert graph.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
