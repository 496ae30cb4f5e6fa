// Command dynamic_html is a thaw function: the SeBS dynamic-html port: render a page of seeded random numbers.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
