package v1

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	if got := Truncate("short", 10); got != "short" {
		t.Fatalf("%q", got)
	}
	if got := Truncate(strings.Repeat("a", 20), 10); got != "aaaaaaa..." {
		t.Fatalf("%q", got)
	}
	// Never inside a character: é is two bytes.
	for n := 4; n < 20; n++ {
		got := Truncate(strings.Repeat("é", 20), n)
		if !utf8.ValidString(got) || len(got) > n {
			t.Fatalf("n=%d: %q (%d bytes)", n, got, len(got))
		}
	}
}
