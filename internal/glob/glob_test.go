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
		{"*K*", "xx\u212axx", true, true},   // Kelvin sign folds to k
		{"*st*", "xx\u017ftxx", true, true}, // long s folds to s
		{"*ab?d*ab", "xabxdyabcdab", false, true},
		{"a*b*c", "abcbc", false, true},
		{"a*a", "a", false, false},
		{"*aab", "aaab", false, true},
		{"*[ab]x*y", "bbxqy", false, true},
	}
	for _, tc := range cases {
		p, err := Compile(tc.pattern, tc.fold)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := p.Match(tc.s); got != tc.want {
			t.Errorf("Match(%q, %q, fold=%v) = %v, want %v", tc.pattern, tc.s, tc.fold, got, tc.want)
		}
		if got := p.matchBacktracking(tc.s); got != tc.want {
			t.Errorf("matchBacktracking(%q, %q, fold=%v) = %v, want %v", tc.pattern, tc.s, tc.fold, got, tc.want)
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

func TestLongWildcardSegmentBetweenStarsIsRefused(t *testing.T) {
	if _, err := Compile("*a?"+strings.Repeat("a", MaxWildSegment)+"*", true); err == nil || !strings.Contains(err.Error(), "at most 32") {
		t.Fatalf("a %d-character wildcard segment between stars: %v", MaxWildSegment+2, err)
	}
	for _, ok := range []string{"*a?" + strings.Repeat("a", MaxWildSegment-2) + "*", "a?" + strings.Repeat("a", 100) + "*", "*" + strings.Repeat("a", 1000) + "*"} {
		if _, err := Compile(ok, true); err != nil {
			t.Fatalf("%d-byte pattern refused: %v", len(ok), err)
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
	f.Add("*K?s*", "x\u212a\u017fs")
	f.Add("*ab?d*ab", "xabxdyabcdab")
	f.Add("*a[!b]?c*[x-z]*", "qaxycbz")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 64 || len(s) > 256 {
			return
		}
		for _, fold := range []bool{false, true} {
			p, err := Compile(pattern, fold)
			if err != nil {
				return
			}
			got := p.Match(s)
			if want := p.matchBacktracking(s); got != want {
				t.Fatalf("Match(%q, %q, fold=%v) = %v, the backtracking matcher says %v", pattern, s, fold, got, want)
			}
			if !fold && got && p.LiteralPrefix() != "" && !strings.HasPrefix(s, p.LiteralPrefix()) {
				t.Fatalf("%q matched %q without its literal prefix", pattern, s)
			}
		}
	})
}

// BenchmarkAdversarial is the slow pattern of the attack run: a
// case-insensitive glob with a 1,000-character literal after a star,
// against 230 values of 4 KiB (one login's claim list). It took 2.5 s per
// evaluation with the backtracking matcher.
//
//	go test ./internal/glob -run '^$' -bench Adversarial
func BenchmarkAdversarial(b *testing.B) {
	ascii, accented := strings.Repeat("a", 4096), strings.Repeat("é", 2048)
	for _, tc := range []struct{ name, pattern, value string }{
		{"tail-literal", "*" + strings.Repeat("a", 999) + "b", ascii},
		{"middle-literal", "*" + strings.Repeat("a", 499) + "b*", ascii},
		{"middle-wildcards", "*a?" + strings.Repeat("a", 29) + "b*", ascii},
		{"middle-wildcards-non-ASCII", "*é?" + strings.Repeat("é", 29) + "b*", accented},
	} {
		p, err := Compile(tc.pattern, true)
		if err != nil {
			b.Fatal(err)
		}
		value := tc.value
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				for range 230 {
					if p.Match(value) {
						b.Fatal("matched")
					}
				}
			}
		})
	}
}
