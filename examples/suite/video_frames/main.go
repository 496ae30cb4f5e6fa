// Command video_frames is a thaw function: a video-processing stand-in
// (FunctionBench video_processing, SeBS video-processing) that turns
// generated frames grey, blurs them and measures motion between them.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
