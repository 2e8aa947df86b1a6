package adaptive

import (
	"context"
	"errors"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestBoundShrinksWhenTheServerQueuesAndGrowsWhenItDoesNot feeds
// latencies (no real waiting): writes at the unloaded latency let the
// bound grow to Max; writes taking several times that shrink it to Min;
// the unloaded latency again lets it grow back.
func TestBoundShrinksWhenTheServerQueuesAndGrowsWhenItDoesNot(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := New(1, 16)
	l.Now = c.now
	step := func(rtt time.Duration, n int) {
		for range n {
			c.t = c.t.Add(rtt)
			l.Observe(rtt)
		}
	}
	step(10*time.Millisecond, 200)
	if l.Limit() != 16 {
		t.Fatalf("unloaded: bound %d, want 16", l.Limit())
	}
	step(60*time.Millisecond, 200) // six times the unloaded latency: a queue
	if l.Limit() != 1 {
		t.Fatalf("queueing: bound %d, want 1", l.Limit())
	}
	step(15*time.Millisecond, 400) // within tolerance of the unloaded latency
	if l.Limit() != 16 {
		t.Fatalf("recovered: bound %d, want 16", l.Limit())
	}
}

// TestOneQueueShrinksTheBoundOnce: the writes in flight that all waited in
// the same queue report it together; the bound shrinks once per write
// time, not once per write.
func TestOneQueueShrinksTheBoundOnce(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := New(1, 16)
	l.Now = c.now
	for range 50 {
		c.t = c.t.Add(10 * time.Millisecond)
		l.Observe(10 * time.Millisecond)
	}
	c.t = c.t.Add(100 * time.Millisecond)
	for range 16 { // sixteen completions at the same instant, all slow
		l.Observe(100 * time.Millisecond)
	}
	if got := l.Limit(); got != 12 {
		t.Fatalf("bound %d after one queue, want 12 (16 x 0.8)", got)
	}
}

// TestDoHoldsWritesBeyondTheBound: with the bound at 1, a second write
// waits until the first is done, and a cancelled wait returns the context's
// error without writing.
func TestDoHoldsWritesBeyondTheBound(t *testing.T) {
	l := New(1, 1)
	first := make(chan struct{})
	release := make(chan struct{})
	go func() {
		_ = l.Do(context.Background(), func() error { close(first); <-release; return nil })
	}()
	<-first
	ctx, cancel := context.WithCancel(context.Background())
	wrote := false
	done := make(chan error)
	go func() { done <- l.Do(ctx, func() error { wrote = true; return nil }) }()
	select {
	case err := <-done:
		t.Fatalf("a second write ran beyond the bound (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || wrote {
		t.Fatalf("cancelled wait: %v, wrote %v", err, wrote)
	}
	close(release)
	if err := l.Do(context.Background(), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	var nilLimiter *Limiter
	if err := nilLimiter.Do(context.Background(), func() error { return errors.New("ran") }); err == nil {
		t.Fatal("a nil limiter did not run the write")
	}
}
