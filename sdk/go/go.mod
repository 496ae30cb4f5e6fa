module github.com/thaw-run/thaw/sdk/go

go 1.24
