// Package parallel runs independent work items on a bounded set of
// goroutines, over errgroup's limit.
package parallel

import (
	"context"
	"runtime"

	"golang.org/x/sync/errgroup"
)

// ForEach calls fn(i) for i in [0, n) with at most workers calls running at
// once (GOMAXPROCS when workers <= 0) and returns when all calls have
// returned. Items not yet started when ctx is cancelled are skipped.
func ForEach(ctx context.Context, n, workers int, fn func(i int)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var g errgroup.Group
	g.SetLimit(workers)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		g.Go(func() error {
			if ctx.Err() == nil {
				fn(i)
			}
			return nil
		})
	}
	_ = g.Wait()
}
