// Command initheavy is a thaw function with an expensive initialisation: it
// builds a search index of about 100 MiB over a synthetic corpus, then
// answers queries that touch a small, stable part of it. It is the
// workload snapshots exist for (REAP's working sets were 8-99 MB).
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

var app = NewApp(DefaultCorpus)

func init() {
	thaw.Handle(app)
	thaw.OnRestore(app.Reseed)
}

func main() {}
