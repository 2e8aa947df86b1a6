// Package parallel runs numbered operations on a fixed number of
// goroutines and times each, for benchmarks that report write latencies.
// It is errgroup.SetLimit plus what errgroup lacks: each operation's
// latency and the wall time (tests that only need the limit use errgroup).
package parallel

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"
)

// Timed runs op(0..n-1) on workers goroutines and returns each
// operation's latency, the wall time and the first error (operations not
// started yet are skipped once one fails).
func Timed(n, workers int, op func(i int) error) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(max(1, workers))
	start := time.Now()
	for i := range n {
		g.Go(func() error {
			if ctx.Err() != nil {
				return nil // another operation failed
			}
			t0 := time.Now()
			if err := op(i); err != nil {
				return err
			}
			lat[i] = time.Since(t0)
			return nil
		})
	}
	err := g.Wait()
	return lat, time.Since(start), err
}
