package login

import (
	"fmt"
	"strings"
)

// logsHoldNoSecret searches everything the manager and the login server
// logged (at debug level) for every secret, token and signature the tests
// sent. TestMain runs it after all tests.
func logsHoldNoSecret() error {
	out := logs.String()
	if len(out) == 0 {
		return fmt.Errorf("nothing was logged: the secret search would prove nothing")
	}
	n := 0
	var leaked []string
	secretsUsed.Range(func(k, _ any) bool {
		n++
		if s := k.(string); len(s) >= 16 && strings.Contains(out, s) {
			leaked = append(leaked, fmt.Sprintf("%.24s...", s))
		}
		return true
	})
	if len(leaked) > 0 {
		return fmt.Errorf("the logs contain %d secrets, tokens or signatures: %v", len(leaked), leaked)
	}
	if n == 0 {
		return fmt.Errorf("no secret recorded: the search would prove nothing")
	}
	fmt.Printf("login: searched %d bytes of logs for %d secrets, tokens and signatures: none found\n", len(out), n)
	return nil
}
