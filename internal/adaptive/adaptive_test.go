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

// TestDoAfterWaitsHoldingTheSlotAndTimesOnlyTheWrite: the last wait runs
// after the slot is taken (a second write cannot start meanwhile) and
// before the write, and however long it takes it does not count as the
// write's latency (it would shrink the bound for no queue at the server).
func TestDoAfterWaitsHoldingTheSlotAndTimesOnlyTheWrite(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := New(1, 1)
	l.Now = c.now
	for range 20 { // the unloaded latency: 10ms
		c.t = c.t.Add(10 * time.Millisecond)
		l.Observe(10 * time.Millisecond)
	}
	ctx := context.Background()
	waiting, release := make(chan struct{}), make(chan struct{})
	var order []string
	done := make(chan error)
	go func() {
		done <- l.DoAfter(ctx, func(context.Context) {
			order = append(order, "wait")
			close(waiting)
			<-release
			c.t = c.t.Add(time.Hour) // a very long wait, on the limiter's clock
		}, func() error {
			order = append(order, "write")
			c.t = c.t.Add(10 * time.Millisecond)
			return nil
		})
	}()
	<-waiting
	second := make(chan error)
	go func() { second <- l.Do(ctx, func() error { return nil }) }()
	select {
	case err := <-second:
		t.Fatalf("a second write took the slot while the first was in its last wait (err %v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if len(order) != 2 || order[0] != "wait" || order[1] != "write" {
		t.Fatalf("order %v, want [wait write]", order)
	}
	// Bound 1 cannot shrink; a bound of 4 shows the wait was not timed.
	l4 := New(1, 4)
	l4.Now = c.now
	for range 20 {
		c.t = c.t.Add(10 * time.Millisecond)
		l4.Observe(10 * time.Millisecond)
	}
	for range 8 {
		if err := l4.DoAfter(ctx, func(context.Context) { c.t = c.t.Add(time.Second) }, func() error {
			c.t = c.t.Add(10 * time.Millisecond)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got := l4.Limit(); got != 4 {
		t.Fatalf("bound %d after writes at the unloaded latency with long waits before them, want 4", got)
	}
}
