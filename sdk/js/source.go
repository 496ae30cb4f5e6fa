package thawjs

import "embed"

// SourceFS holds this module's own source: go.mod, go.sum, the Go files
// and prelude.js, tests excluded.
//
// It exists for the thaw command, which embeds the runtime through it so
// that `thaw build` can compile a JavaScript function without a module
// proxy serving the runtime (it is not published on one). A function has
// no use for it, and nothing a function calls refers to it, so the linker
// leaves the files out of the function's module.
//
//go:embed go.mod go.sum runtime.go source.go prelude.js
var SourceFS embed.FS
