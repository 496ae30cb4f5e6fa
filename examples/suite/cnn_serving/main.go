// Command cnn_serving is a thaw function: the FunctionBench cnn_serving port: a small convolutional network classifies an image.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
