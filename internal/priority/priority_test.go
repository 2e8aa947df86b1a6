package priority

import (
	"context"
	"testing"
	"time"
)

func TestWaitHoldsBackgroundWorkWhileALoginIsInFlight(t *testing.T) {
	var g Gate
	if g.Wait(context.Background()) {
		t.Fatal("waited with no login in flight")
	}
	done := g.Enter()
	released := make(chan bool)
	go func() { released <- g.Wait(context.Background()) }()
	select {
	case <-released:
		t.Fatal("background work went ahead of a login in flight")
	case <-time.After(MaxWait / 5):
	}
	done()
	done() // idempotent
	if waited := <-released; !waited {
		t.Fatal("Wait reported no wait")
	}
	if g.InFlight() != 0 {
		t.Fatalf("%d in flight", g.InFlight())
	}
}

func TestWaitIsBoundedUnderASteadyStreamOfLogins(t *testing.T) {
	var g Gate
	done := g.Enter() // a login that never ends (or a stream that never pauses)
	defer done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan struct{})
	go func() { g.Wait(ctx); close(out) }()
	select {
	case <-out: // released after MaxWait
	case <-time.After(20 * MaxWait):
		t.Fatal("background work starved behind logins")
	}
	cancel()
	if !g.Wait(ctx) {
		t.Fatal("a cancelled wait with a login in flight reported no wait")
	}
}

func TestNilGateNeverWaits(t *testing.T) {
	var g *Gate
	g.Enter()()
	if g.Wait(context.Background()) || g.InFlight() != 0 {
		t.Fatal("a nil gate waited")
	}
}
