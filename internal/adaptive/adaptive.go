// Package adaptive bounds how many writes a controller has in flight at
// the apiserver, and finds the bound from the writes' own latency, as TCP
// Vegas finds its window: while a write takes about as long as the
// fastest seen lately, the server is not queueing and one more may be in
// flight; once writes take Tolerance times that long, the server is
// queueing (its CPU shared with logins, other controllers, people) and the
// bound shrinks. A mass move then runs at the speed the server sustains
// without a queue, so a login's write that arrives meanwhile is not served
// behind a dozen of the controller's.
package adaptive

import (
	"context"
	"sync"
	"time"
)

// Defaults of a Limiter's zero fields.
const (
	DefaultTolerance = 3.0
	// baselineWindow is how long a fastest-write sample counts as the
	// unloaded latency (the previous window's and this one's minimum).
	baselineWindow = 30 * time.Second
	decrease       = 0.8
)

// Limiter bounds writes in flight between Min and Max.
type Limiter struct {
	Min, Max  int
	Tolerance float64 // 0: DefaultTolerance
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu           sync.Mutex
	limit        float64
	inFlight     int
	winMin       time.Duration
	prevMin      time.Duration
	winStart     time.Time
	lastDecrease time.Time
	wake         chan struct{}
}

// New returns a limiter that starts at max in flight.
func New(minInFlight, maxInFlight int) *Limiter {
	return &Limiter{Min: max(1, minInFlight), Max: max(1, minInFlight, maxInFlight)}
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Limiter) init() {
	if l.limit == 0 {
		l.limit = float64(max(1, l.Max))
		l.wake = make(chan struct{})
	}
}

// Do runs write once a slot is free and feeds its latency back. A nil
// Limiter runs write at once.
func (l *Limiter) Do(ctx context.Context, write func() error) error {
	return l.DoAfter(ctx, nil, write)
}

// DoAfter is Do with a last wait between taking a slot and writing, for
// writes that yield to more urgent ones (a login in flight): a write
// queued for a slot may get it long after it last looked, so it looks
// again at the last moment. The slot is held meanwhile (no other write
// takes it), and the wait is not part of the write's latency. A nil wait
// does not wait; a nil Limiter waits, then writes.
func (l *Limiter) DoAfter(ctx context.Context, wait func(context.Context), write func() error) error {
	if l == nil {
		if wait != nil {
			wait(ctx)
		}
		return write()
	}
	if err := l.acquire(ctx); err != nil {
		return err
	}
	if wait != nil {
		wait(ctx)
	}
	start := l.now()
	err := write()
	l.release(l.now().Sub(start))
	return err
}

func (l *Limiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		l.init()
		if l.inFlight < int(l.limit) {
			l.inFlight++
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *Limiter) release(rtt time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	l.observe(rtt)
	close(l.wake) // every waiter looks again
	l.wake = make(chan struct{})
}

// Observe feeds one write's latency (for tests and callers that time
// their own writes).
func (l *Limiter) Observe(rtt time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.observe(rtt)
}

func (l *Limiter) observe(rtt time.Duration) {
	l.init()
	now := l.now()
	if l.winStart.IsZero() || now.Sub(l.winStart) > baselineWindow {
		l.prevMin, l.winMin, l.winStart = l.winMin, 0, now
	}
	if l.winMin == 0 || rtt < l.winMin {
		l.winMin = rtt
	}
	base := l.winMin
	if l.prevMin > 0 && l.prevMin < base {
		base = l.prevMin
	}
	tol := l.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	if float64(rtt) > tol*float64(base) {
		// Queueing: shrink, at most once per write time (the writes in
		// flight all saw the same queue).
		if now.Sub(l.lastDecrease) >= rtt {
			l.limit = max(float64(l.Min), l.limit*decrease)
			l.lastDecrease = now
		}
		return
	}
	l.limit = min(float64(l.Max), l.limit+1/l.limit) // about +1 per round of writes
}

// Limit is the current bound.
func (l *Limiter) Limit() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	return int(l.limit)
}
