package parallel

import (
	"errors"
	"sync/atomic"
	"testing"
)

func TestTimedRunsEachOnceAndStopsOnError(t *testing.T) {
	var seen [100]atomic.Int32
	lat, _, err := Timed(100, 8, func(i int) error { seen[i].Add(1); return nil })
	if err != nil || len(lat) != 100 {
		t.Fatal(err)
	}
	for i := range seen {
		if seen[i].Load() != 1 {
			t.Fatalf("op %d ran %d times", i, seen[i].Load())
		}
	}
	boom := errors.New("boom")
	var ran atomic.Int32
	if _, _, err := Timed(1000, 4, func(i int) error {
		ran.Add(1)
		if i == 3 {
			return boom
		}
		return nil
	}); !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	if ran.Load() == 1000 {
		t.Fatal("kept going after a failure")
	}
}
