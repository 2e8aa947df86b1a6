package emailaddr

import (
	"strings"
	"testing"
)

func TestOnlyASCIILettersFold(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"Kim@Example.COM", "kim@example.com", true},
		{"kim@example.com", "kim@example.com", true},
		{"\u212aim@example.com", "kim@example.com", false}, // Kelvin sign
		{"\u212aim@example.com", "Kim@example.com", false},
		{"ro\u017fa@example.com", "rosa@example.com", false}, // long s
		{"\u0130ris@example.com", "iris@example.com", false}, // dotted capital I
		{"", "", false},
	} {
		if got := Equal(tc.a, tc.b); got != tc.same {
			t.Errorf("Equal(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
		if tc.a != "" && strings.EqualFold(tc.a, tc.b) && !tc.same {
			t.Logf("strings.EqualFold(%q, %q) is true: the look-alike rolesync refuses", tc.a, tc.b)
		}
	}
	if Fold("\u212aIM") != "\u212aim" {
		t.Fatal("Fold changed a non-ASCII rune")
	}
}
