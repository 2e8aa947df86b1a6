package login

import (
	"strings"
	"testing"
)

// TestLogsHoldNoSecret runs last (file order): every secret, token and
// signature the tests sent is searched for in everything the manager and
// the login server logged, at debug level.
func TestLogsHoldNoSecret(t *testing.T) {
	out := logs.String()
	if len(out) == 0 {
		t.Fatal("nothing was logged: the search would prove nothing")
	}
	n := 0
	secretsUsed.Range(func(k, _ any) bool {
		n++
		s := k.(string)
		if len(s) >= 16 && strings.Contains(out, s) {
			t.Errorf("the logs contain a secret, token or signature: %.24s...", s)
		}
		return true
	})
	if n < 10 {
		t.Fatalf("only %d secrets recorded: the search would prove little", n)
	}
	t.Logf("searched %d bytes of logs for %d secrets, tokens and signatures", len(out), n)
}
