// Package emailaddr is the one rule by which an email address identifies a
// person in rolesync: two addresses are the same when they are equal after
// lower-casing ASCII letters only. Unicode case folding is never applied:
// it maps look-alikes onto ASCII (the Kelvin sign U+212A folds to "k", the
// long s U+017F to "s"), so "\u212aim@example.com" would be kim@example.com
// under strings.EqualFold or PostgreSQL's lower() in a UTF-8 locale.
package emailaddr

import "strings"

// Fold lower-cases the ASCII letters of s and leaves every other rune as
// it is.
func Fold(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

// Equal reports whether a and b name the same mailbox: equal after Fold.
func Equal(a, b string) bool { return a != "" && Fold(a) == Fold(b) }

// SQLUpper and SQLLower are the arguments of PostgreSQL's translate()
// that compute Fold in SQL: translate(col, asciiUpper, asciiLower).
const (
	SQLUpper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	SQLLower = "abcdefghijklmnopqrstuvwxyz"
)
