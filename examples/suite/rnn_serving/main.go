// Command rnn_serving is a thaw function: the FunctionBench rnn_serving port: an LSTM generates a name character by character.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
