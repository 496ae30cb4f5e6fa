// Command lr_serving is a thaw function: the FunctionBench lr_serving port: logistic-regression sentiment inference over hashed text features.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
