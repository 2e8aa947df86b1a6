// Package poll waits in tests for a condition that becomes true
// asynchronously (a controller's status, a server coming up).
package poll

import (
	"testing"
	"time"
)

// Until calls cond every interval until it returns nil, and fails the test
// when timeout passes first, with cond's last error and context() (for
// example a process log), when context is not nil.
func Until(t testing.TB, timeout, interval time.Duration, cond func() error, context func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			extra := ""
			if context != nil {
				extra = "\n" + context()
			}
			t.Fatalf("condition not met within %s: %v%s", timeout, err, extra)
		}
		time.Sleep(interval)
	}
}
