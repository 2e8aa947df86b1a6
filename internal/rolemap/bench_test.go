package rolemap

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/jmespath/go-jmespath"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/glob"
)

// The benchmark workload: a user with 30 groups against n rules, a third
// each exact, glob and regex, with the only match at rule n-2 (near the end
// of the list, the worst case for a first-match loop). The same rules are
// expressed for three peers and evaluated in the same run:
//   - CEL, one program per rule (as Kubernetes' AuthenticationConfiguration
//     claim mappings are written), evaluated in order until one is true;
//   - JMESPath, one `a && 'role' || b && 'role' ...` expression (Grafana's
//     role_attribute_path); JMESPath has no regex, so regex rules are written
//     as the equivalent starts_with/ends_with test;
//   - a LiteLLM-style loop: for each rule, for each value, match.

type benchRule struct {
	kind    matcherKind
	pattern string
	role    rolesyncv1.Role
	// for the JMESPath peer
	prefix, suffix string
}

func benchRules(n int) []benchRule {
	rules := make([]benchRule, n)
	for i := range rules {
		role := rolesyncv1.Roles()[i%4]
		switch i % 3 {
		case 0:
			rules[i] = benchRule{kind: kindEquals, pattern: fmt.Sprintf("grp-%04d", i), role: role}
		case 1:
			rules[i] = benchRule{kind: kindGlob, pattern: fmt.Sprintf("team-%04d-*", i), role: role, prefix: fmt.Sprintf("team-%04d-", i)}
		case 2:
			rules[i] = benchRule{kind: kindRegex, pattern: fmt.Sprintf("svc-%04d-(dev|prod)", i), role: role, prefix: fmt.Sprintf("svc-%04d-", i), suffix: "prod"}
		}
	}
	return rules
}

// benchClaims returns 30 groups that share the rules' prefixes but match
// none of them, except one value that matches rule n-2.
func benchClaims(rules []benchRule) map[string]any {
	groups := make([]any, 0, 30)
	for i := 0; len(groups) < 29; i++ {
		switch i % 3 {
		case 0:
			groups = append(groups, fmt.Sprintf("grp-9%03d", i))
		case 1:
			groups = append(groups, fmt.Sprintf("team-9%03d-ml", i))
		case 2:
			groups = append(groups, fmt.Sprintf("svc-9%03d-prod", i))
		}
	}
	target := rules[len(rules)-2]
	var v string
	switch target.kind {
	case kindEquals:
		v = target.pattern
	case kindGlob:
		v = target.prefix + "ml"
	case kindRegex:
		v = target.prefix + "prod"
	}
	groups = append(groups[:15], append([]any{v}, groups[15:]...)...)
	return map[string]any{"sub": "u1", "email": "u1@example.com", "groups": groups}
}

func benchEngine(b *testing.B, rules []benchRule) *Engine {
	rm := &rolesyncv1.RoleMapping{}
	rm.Namespace, rm.Name = "ns", "bench"
	rm.Spec.Claim = "groups"
	rm.Spec.Resolution = rolesyncv1.ResolutionFirstMatch
	for _, r := range rules {
		p := r.pattern
		rr := rolesyncv1.RoleRule{Role: r.role}
		switch r.kind {
		case kindEquals:
			rr.Equals = &p
		case kindGlob:
			rr.Glob = &p
		case kindRegex:
			rr.Regex = &p
		}
		rm.Spec.Rules = append(rm.Spec.Rules, rr)
	}
	m, errs := Compile(rm)
	if len(errs) > 0 {
		b.Fatal(errs.ToAggregate())
	}
	return NewEngine(m)
}

var benchSizes = []int{10, 100, 1000}

func BenchmarkEvaluate(b *testing.B) {
	for _, n := range benchSizes {
		rules := benchRules(n)
		claims := benchClaims(rules)
		b.Run(fmt.Sprintf("rules=%d/engine=rolesync", n), func(b *testing.B) {
			e := benchEngine(b, rules)
			var d Decision
			e.EvaluateInto(claims, "", &d)
			if d.Source.Rule != n-2 {
				b.Fatalf("decided by rule %d, want %d", d.Source.Rule, n-2)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				e.EvaluateInto(claims, "", &d)
			}
		})
		b.Run(fmt.Sprintf("rules=%d/engine=naive-loop", n), func(b *testing.B) {
			match := naiveMatchers(b, rules)
			groups := claims["groups"].([]any)
			if got := naiveEvaluate(match, groups); got != n-2 {
				b.Fatalf("naive loop decided by rule %d", got)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				naiveEvaluate(match, groups)
			}
		})
		b.Run(fmt.Sprintf("rules=%d/engine=cel", n), func(b *testing.B) {
			progs := celPrograms(b, rules)
			act := map[string]any{"claims": claims}
			if got := celEvaluate(progs, act); got != n-2 {
				b.Fatalf("CEL decided by rule %d", got)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				celEvaluate(progs, act)
			}
		})
		b.Run(fmt.Sprintf("rules=%d/engine=jmespath", n), func(b *testing.B) {
			jp := jmespathProgram(b, rules)
			out, err := jp.Search(claims)
			if err != nil || out != fmt.Sprintf("r%d", n-2) {
				b.Fatalf("JMESPath returned %v, %v", out, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				_, _ = jp.Search(claims)
			}
		})
	}
}

func naiveMatchers(b *testing.B, rules []benchRule) []func(string) bool {
	out := make([]func(string) bool, len(rules))
	for i, r := range rules {
		switch r.kind {
		case kindEquals:
			p := r.pattern
			out[i] = func(s string) bool { return s == p }
		case kindGlob:
			g, err := glob.Compile(r.pattern, false)
			if err != nil {
				b.Fatal(err)
			}
			out[i] = g.Match
		case kindRegex:
			out[i] = regexp.MustCompile("^(?:" + r.pattern + ")$").MatchString
		}
	}
	return out
}

func naiveEvaluate(match []func(string) bool, groups []any) int {
	for i, m := range match {
		for _, g := range groups {
			if s, ok := g.(string); ok && m(s) {
				return i
			}
		}
	}
	return -1
}

func celPrograms(b *testing.B, rules []benchRule) []cel.Program {
	env, err := cel.NewEnv(cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)))
	if err != nil {
		b.Fatal(err)
	}
	progs := make([]cel.Program, len(rules))
	for i, r := range rules {
		var expr string
		switch r.kind {
		case kindEquals:
			expr = fmt.Sprintf("claims.groups.exists(g, g == %q)", r.pattern)
		case kindGlob:
			expr = fmt.Sprintf("claims.groups.exists(g, g.startsWith(%q))", r.prefix)
		case kindRegex:
			expr = fmt.Sprintf("claims.groups.exists(g, g.matches(%q))", "^(?:"+r.pattern+")$")
		}
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			b.Fatal(iss.Err())
		}
		if progs[i], err = env.Program(ast, cel.EvalOptions(cel.OptOptimize)); err != nil {
			b.Fatal(err)
		}
	}
	return progs
}

func celEvaluate(progs []cel.Program, act map[string]any) int {
	for i, p := range progs {
		if out, _, err := p.Eval(act); err == nil && out.Value() == true {
			return i
		}
	}
	return -1
}

func jmespathProgram(b *testing.B, rules []benchRule) *jmespath.JMESPath {
	var sb strings.Builder
	for i, r := range rules {
		var test string
		switch r.kind {
		case kindEquals:
			test = fmt.Sprintf("contains(groups, '%s')", r.pattern)
		case kindGlob:
			test = fmt.Sprintf("length(groups[?starts_with(@, '%s')]) > `0`", r.prefix)
		case kindRegex:
			test = fmt.Sprintf("length(groups[?starts_with(@, '%s') && ends_with(@, '%s')]) > `0`", r.prefix, r.suffix)
		}
		if i > 0 {
			sb.WriteString(" || ")
		}
		fmt.Fprintf(&sb, "(%s) && 'r%d'", test, i)
	}
	jp, err := jmespath.Compile(sb.String())
	if err != nil {
		b.Fatal(err)
	}
	return jp
}
