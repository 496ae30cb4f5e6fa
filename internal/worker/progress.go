package worker

import (
	"context"

	"github.com/thaw-run/thaw/internal/api"
)

// DeployProgress is called by Deploy as it begins each of its stages
// (api.StageCompile, StageBoot, StageSnapshot, StageCommit, in that order;
// StageSnapshot only for a function with a snapshot). It runs on the
// deploying goroutine and must return quickly.
type DeployProgress func(stage api.DeployStage)

// progressKey is WithDeployProgress's context key.
type progressKey struct{}

// WithDeployProgress returns a context under which Deploy reports its
// stages to fn. Like net/http/httptrace's hooks it travels in the context,
// so the deploy's callers in between (the server's Backend interface)
// need not know of it; without it Deploy reports nothing.
func WithDeployProgress(ctx context.Context, fn DeployProgress) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// deployProgress returns ctx's progress hook, or one that does nothing.
func deployProgress(ctx context.Context) DeployProgress {
	if fn, ok := ctx.Value(progressKey{}).(DeployProgress); ok && fn != nil {
		return fn
	}
	return func(api.DeployStage) {}
}
