package rolemap

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkEvaluateTeams: team rules beside role rules on the same indexed
// engine, at 100 and 1,000 rules of each, a login with 20 groups; literal
// teams (equals) and a templated regex rule. Reused decisions: no
// allocation per login for literal teams.
//
//	go test ./internal/rolemap -run '^$' -bench EvaluateTeams -benchmem
func BenchmarkEvaluateTeams(b *testing.B) {
	for _, n := range []int{100, 1000} {
		var sb strings.Builder
		sb.WriteString("metadata: {name: m}\nspec:\n  claim: groups\n  onNoMatch: Deny\n  allowedTeams: [\"ai-*\"]\n  rules:\n")
		for i := range n {
			fmt.Fprintf(&sb, "  - {equals: group-%04d, role: internal_user}\n", i)
		}
		sb.WriteString("  teams:\n")
		for i := range n - 1 {
			fmt.Fprintf(&sb, "  - {equals: group-%04d, team: ai-%04d}\n", i, i)
		}
		sb.WriteString("  - {regex: \"group-(00[0-9][0-9])\", team: \"ai-x$1\"}\n")
		rm := teamMapping(&testing.T{}, sb.String())
		m, errs := Compile(rm)
		if len(errs) > 0 {
			b.Fatal(errs)
		}
		e := NewEngine(m)
		groups := make([]any, 20)
		for i := range groups {
			groups[i] = fmt.Sprintf("group-%04d", (i*37)%n)
		}
		claims := map[string]any{"groups": groups}
		b.Run(fmt.Sprintf("rules=%d/roles", n), func(b *testing.B) {
			var d Decision
			b.ReportAllocs()
			for range b.N {
				e.EvaluateInto(claims, "", &d)
			}
		})
		b.Run(fmt.Sprintf("rules=%d/teams", n), func(b *testing.B) {
			var td TeamDecision
			b.ReportAllocs()
			for range b.N {
				e.EvaluateTeamsInto(claims, "", &td)
			}
			b.ReportMetric(float64(len(td.Grants)), "teams/login")
		})
	}
}
