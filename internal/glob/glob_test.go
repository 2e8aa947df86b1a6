package glob

import (
	"strings"
	"testing"
)

// Cases checked against Python's fnmatch.fnmatchcase semantics.
func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		fold, want bool
	}{
		{"user_*", "user_alice", false, true},
		{"user_*", "user_", false, true},
		{"user_*", "admin_user_x", false, false},
		{"team_?", "team_a", false, true},
		{"team_?", "team_ab", false, false},
		{"team_?", "team_", false, false},
		{"*", "", false, true},
		{"*", "/org/team/ml", false, true},
		{"/org/*/ml", "/org/team/sub/ml", false, true}, // * crosses '/'
		{"/org/*", "/org/team/ml", false, true},
		{"admin", "admin", false, true},
		{"admin", "Admin", false, false}, // case-sensitive
		{"admin", "Admin", true, true},
		{"ADMIN-*", "admin-x", true, true},
		{"[abc]x", "bx", false, true},
		{"[abc]x", "dx", false, false},
		{"[!abc]x", "dx", false, true},
		{"[!abc]x", "ax", false, false},
		{"[a-c]", "b", false, true},
		{"[a-c]", "B", false, false},
		{"[a-c]", "B", true, true},
		{"[]]", "]", false, true},
		{"[!]]", "a", false, true},
		{"[", "[", false, true},        // unclosed: literal
		{"a[b", "a[b", false, true},    // unclosed: literal
		{"[z-a]", "m", false, false},   // reversed range is empty
		{"a\\*", "a\\bc", false, true}, // backslash is literal, * is a wildcard
		{"^x", "^x", false, true},
		{"*a*a*a*a*b", strings.Repeat("a", 40), false, false},
		{"*a*b*c", "xxaxxbxxc", false, true},
		{"é?", "éa", false, true},
		{"?", "é", false, true},
		{"**x", "abx", false, true},
		{"*-admins", "sg-ai-admins", false, true},
		{"*-admins", "sg-ai-admins-old", false, false},
	}
	for _, tc := range cases {
		p, err := Compile(tc.pattern, tc.fold)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := p.Match(tc.s); got != tc.want {
			t.Errorf("Match(%q, %q, fold=%v) = %v, want %v", tc.pattern, tc.s, tc.fold, got, tc.want)
		}
	}
}

func TestLiterals(t *testing.T) {
	cases := []struct{ pattern, prefix, suffix string }{
		{"team-*", "team-", ""},
		{"*-admins", "", "-admins"},
		{"a*b", "a", "b"},
		{"abc", "abc", "abc"},
		{"?x", "", "x"},
		{"[ab]c*", "", ""},
	}
	for _, tc := range cases {
		p, _ := Compile(tc.pattern, false)
		if p.LiteralPrefix() != tc.prefix || p.LiteralSuffix() != tc.suffix {
			t.Errorf("%q: prefix %q suffix %q, want %q %q", tc.pattern, p.LiteralPrefix(), p.LiteralSuffix(), tc.prefix, tc.suffix)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	p, _ := Compile("sg-*-[a-z]?-admins", true)
	n := testing.AllocsPerRun(100, func() { p.Match("SG-ai-ml-x1-admins") })
	if n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
}

func FuzzGlob(f *testing.F) {
	f.Add("user_*", "user_x")
	f.Add("[!a-c]*?", "zz")
	f.Add("*a*a*a*", "aaaaaaaaaaaaaaaaaaaaaab")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 64 || len(s) > 256 {
			return
		}
		p, err := Compile(pattern, false)
		if err != nil {
			return
		}
		if p.Match(s) && p.LiteralPrefix() != "" && !strings.HasPrefix(s, p.LiteralPrefix()) {
			t.Fatalf("%q matched %q without its literal prefix", pattern, s)
		}
	})
}
