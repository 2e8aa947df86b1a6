// Package parallel runs numbered operations on a fixed number of
// goroutines, for tests and benchmarks that create or write many objects.
package parallel

import (
	"sync"
	"sync/atomic"
	"time"
)

// Do runs op(0..n-1) on workers goroutines and returns the first error
// (the other workers stop taking new operations once one fails).
func Do(n, workers int, op func(i int) error) error {
	_, _, err := Timed(n, workers, op)
	return err
}

// Timed is Do that also returns each operation's latency and the wall time.
func Timed(n, workers int, op func(i int) error) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range max(1, workers) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n && failed.Load() == nil; i = int(next.Add(1)) - 1 {
				t0 := time.Now()
				if err := op(i); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	err, _ := failed.Load().(error)
	return lat, time.Since(start), err
}
