package thaw

import "embed"

// SourceFS holds the SDK module's own source: its go.mod and the Go files
// of this package and of package wire, tests included.
//
// It exists for the thaw command, which embeds the SDK through it so that
// `thaw new` can give a function the SDK without a module proxy (the SDK is
// not published on one). A function has no use for it, and costs nothing
// for it: nothing a function calls refers to SourceFS, so the linker leaves
// the files out of the function's module.
//
//go:embed go.mod *.go wire/*.go
var SourceFS embed.FS
