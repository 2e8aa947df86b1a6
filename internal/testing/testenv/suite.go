package testenv

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Suite is a test package's shared control plane, started by the first
// test that needs it and stopped by TestMain after the run. Tests that need
// no apiserver never call Need, so they run with plain `go test` on a
// machine without KUBEBUILDER_ASSETS; a test that needs it fails (never
// skips) with the how-to when it cannot start.
type Suite struct {
	start func() (stop func(), err error)

	once sync.Once
	stop func()
	err  error
}

// NewSuite returns a suite started by start (which returns how to stop it).
func NewSuite(start func() (stop func(), err error)) *Suite {
	return &Suite{start: start}
}

// Need starts the suite if it is not running yet and fails tb when it
// cannot be started.
func (s *Suite) Need(tb testing.TB) {
	tb.Helper()
	s.once.Do(func() { s.stop, s.err = s.start() })
	if s.err != nil {
		tb.Fatalf("the test suite's control plane did not start: %v", s.err)
	}
}

// Started reports whether a test started the suite successfully.
func (s *Suite) Started() bool {
	return s.stop != nil && s.err == nil
}

// Run runs the package's tests (TestMain's m.Run) and stops the suite
// after them, if a test started it; it returns the exit code.
func (s *Suite) Run(m *testing.M, name string) int {
	code := m.Run()
	if s.stop != nil {
		s.stop()
	}
	if s.err != nil && code == 0 {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, s.err)
		code = 1
	}
	return code
}

// Eventually calls cond every interval (at once first) until it returns
// nil, and fails tb when timeout passes first, with cond's last error and
// describe() (for example a process log) when describe is not nil. It is
// wait.PollUntilContextTimeout with the last error kept for the message.
func Eventually(tb testing.TB, timeout, interval time.Duration, cond func() error, describe func() string) {
	tb.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), interval, timeout, true, func(context.Context) (bool, error) {
		last = cond()
		return last == nil, nil
	})
	if err != nil {
		extra := ""
		if describe != nil {
			extra = "\n" + describe()
		}
		tb.Fatalf("condition not met within %s: %v%s", timeout, last, extra)
	}
}

// Stops are cleanups run in reverse order of Add: what a suite's start
// would defer, kept to run when the suite stops (or when its start fails
// half way).
type Stops []func()

// Add registers f.
func (s *Stops) Add(f func()) { *s = append(*s, f) }

// Run runs the cleanups, last added first.
func (s Stops) Run() {
	for i := len(s) - 1; i >= 0; i-- {
		s[i]()
	}
}
