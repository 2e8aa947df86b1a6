package controllers

import (
	"slices"
	"testing"
)

func TestEngineChangesNeverBlockAndCoalesce(t *testing.T) {
	c := NewEngineChanges()
	for range 10000 { // nobody reads: a replica that is not the leader
		c.Notify("a")
		c.Notify("b")
	}
	got := c.take()
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("pending %v, want [a b]", got)
	}
	if len(c.take()) != 0 {
		t.Fatal("namespaces delivered twice")
	}
	select {
	case <-c.signal:
	default:
		t.Fatal("no signal pending after Notify")
	}
}
