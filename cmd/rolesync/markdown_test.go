package main

import (
	"regexp"
	"strings"
	"testing"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/review"
)

// unescapedPipe counts the "|" not preceded by a backslash escape.
func unescapedPipes(row string) int {
	n := 0
	for i := 0; i < len(row); i++ {
		switch row[i] {
		case '\\':
			i++ // the escaped character
		case '|':
			n++
		}
	}
	return n
}

// inertMarkdown reports what in a rendered cell could still act: an
// unescaped code-span backtick, link or image opener, HTML opener, or a
// mention.
var active = regexp.MustCompile("(^|[^\\\\])([`\\[<!])|@[A-Za-z0-9]")

func unescapedActive(s string) string {
	// Drop escaped pairs first so "\\[" (an escaped backslash, then "[") counts.
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			b.WriteString("  ")
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return active.FindString(b.String())
}

// FuzzMarkdownReport: whatever user ids, namespaces, claim values (in the
// sources) and team names hold, the markdown report keeps one table row
// per change with exactly its columns, and no value opens a code span, a
// link, an image, HTML, or mentions anyone.
func FuzzMarkdownReport(f *testing.F) {
	for _, s := range []string{"plain", "a|b", "line\nbreak", "cr\rreturn", "crlf\r\n| x | y |", "[click](https://evil.example)",
		"![img](https://evil.example/x.png)", "@org/team", "@someone", "`code`", "``", "<script>", "back\\slash|", "\\|", "\u2028sep\u2029",
		"**bold**", "$x$", "#123", "https://evil.example"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, value, team string) {
		r := review.Report{Users: 2, Changes: []review.Change{
			{Namespace: "ns", Name: "u1", UserID: value, Gain: true,
				Old:         review.Outcome{Role: rolesyncv1.RoleInternalUser, Source: "m#0 groups=" + value},
				New:         review.Outcome{Role: rolesyncv1.RoleProxyAdmin, Source: "m#1 groups=" + value},
				TeamsGained: []string{team + " (admin)"}, TeamGain: true},
			{Namespace: "ns", Name: "u2", UserID: "u2", Old: review.Outcome{Denied: true, Reason: value}, New: review.Outcome{Role: rolesyncv1.RoleInternalUser},
				TeamsLost: []string{team + " (user)"}},
		}, Transitions: []review.Transition{{From: value, To: "internal_user", Users: 1}}, Gains: 1, TeamGains: 1,
			Unknown: []review.UnknownClaim{{Namespace: "ns", Claim: value, Users: 1, CouldGain: 1, Gainers: []string{"ns/" + value}}}}
		var b strings.Builder
		if err := printMarkdown(&b, r); err != nil {
			t.Fatal(err)
		}
		// CR, LF and CRLF all end a line in Markdown.
		doc := strings.ReplaceAll(b.String(), "\r", "\n")
		var rows []string
		for _, line := range strings.Split(doc, "\n") {
			if strings.HasPrefix(line, "|") {
				rows = append(rows, line)
			}
		}
		// Changes: header, delimiter, 2 rows (7 pipes); transitions: header, delimiter, 1 row (5 pipes).
		want := []int{7, 7, 7, 7, 5, 5, 5}
		if len(rows) != len(want) {
			t.Fatalf("%d table rows, want %d:\n%s", len(rows), len(want), b.String())
		}
		for i, row := range rows {
			if n := unescapedPipes(row); n != want[i] {
				t.Fatalf("row %d has %d cell separators, want %d: %q", i, n, want[i], row)
			}
		}
		for _, line := range strings.Split(doc, "\n") {
			if strings.HasPrefix(line, "### ") {
				continue // our own text: counts only
			}
			if a := unescapedActive(line); a != "" {
				t.Fatalf("active Markdown %q in %q", a, line)
			}
		}
	})
}
