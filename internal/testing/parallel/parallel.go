// Package parallel runs numbered operations on a fixed number of
// goroutines, for tests and benchmarks that create or write many objects.
package parallel

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"
)

// Do runs op(0..n-1) on workers goroutines and returns the first error
// (operations not started yet are skipped once one fails).
func Do(n, workers int, op func(i int) error) error {
	_, _, err := Timed(n, workers, op)
	return err
}

// Timed is Do that also returns each operation's latency and the wall time.
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
