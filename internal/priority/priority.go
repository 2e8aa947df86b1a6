// Package priority lets interactive work go first: while a login is being
// answered, the controllers' background work (a mapping edit moving
// thousands of users, the drift sweep) holds off starting new writes, so a
// login never waits in line behind a mass move at the apiserver or the
// database it shares with it. Background work waits at most MaxWait per
// step, so a steady stream of logins slows a mass move but never stops it.
package priority

import (
	"context"
	"sync"
	"time"
)

// MaxWait is the longest one background write waits for logins: a login's
// own write gets that head start. It is short on purpose: under a steady
// stream of logins one is nearly always in flight, and a longer wait caps a
// mass move at workers/MaxWait writes per second (measured at 100,000
// users with 250 ms: 16 workers, two waits per user, 61 users/s).
const MaxWait = 25 * time.Millisecond

// Gate counts the logins in flight. The zero value is ready to use; a nil
// *Gate never waits.
type Gate struct {
	mu       sync.Mutex
	inFlight int
	idle     chan struct{} // closed when inFlight drops to 0; nil while 0
}

// Enter marks a login in flight; the returned func marks it done.
func (g *Gate) Enter() (done func()) {
	if g == nil {
		return func() {}
	}
	g.mu.Lock()
	g.inFlight++
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.inFlight--
			if g.inFlight == 0 {
				close(g.idle)
				g.idle = nil
			}
			g.mu.Unlock()
		})
	}
}

// Wait returns once no login is in flight, after MaxWait, or when ctx ends,
// whichever is first; it reports whether it waited at all.
func (g *Gate) Wait(ctx context.Context) bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	idle := g.idle
	g.mu.Unlock()
	if idle == nil {
		return false
	}
	t := time.NewTimer(MaxWait)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	case <-ctx.Done():
	}
	return true
}

// InFlight is the number of logins being answered.
func (g *Gate) InFlight() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight
}
