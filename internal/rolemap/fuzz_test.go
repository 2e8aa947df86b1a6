package rolemap

import (
	"encoding/json"
	"testing"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

func fuzzEngine(t testing.TB) *Engine {
	return engineOf(t, `
metadata: {name: fuzz}
spec:
  claim: groups
  rules:
  - {equals: admins, role: proxy_admin}
  - {equals: Auditors, caseInsensitive: true, role: proxy_admin_viewer}
  - {glob: "/org/*/ml", role: internal_user}
  - {glob: "*-readers", role: internal_user_viewer}
  - {glob: "SG-[a-z]?-*", caseInsensitive: true, role: internal_user}
  - {regex: "team-(\\d+)-dev", role: internal_user}
  - {claim: scope, split: " ", equals: "litellm:admin", role: proxy_admin}
  - {claim: 'a\.b[0].c', regex: "(?i)x.*", role: internal_user}
  - {expression: "has(claims.email_verified) && claims.email_verified == true", role: internal_user_viewer}
`)
}

// FuzzEvaluate feeds arbitrary JSON claims to a fixed engine: it must not
// panic, and a decision is either a valid role or a denial.
func FuzzEvaluate(f *testing.F) {
	for _, s := range []string{
		`{"groups":["admins"]}`, `{"groups":"/org/a/ml"}`, `{"groups":[1,true,null,{"a":1},["x"]]}`,
		`{"scope":"a  litellm:admin "}`, `{"a.b":[{"c":"X1"}]}`, `{"email_verified":"yes"}`,
		`{"groups":["ſg-ab-x","\u212a"]}`, `{}`,
	} {
		f.Add(s)
	}
	e := fuzzEngine(f)
	f.Fuzz(func(t *testing.T, s string) {
		var claims map[string]any
		if len(s) > 1<<16 || json.Unmarshal([]byte(s), &claims) != nil {
			return
		}
		d := e.Evaluate(claims, "")
		if d.Denied == d.Role.Valid() {
			t.Fatalf("inconsistent decision %+v", d)
		}
		for _, m := range d.Matches {
			if m.Rule < 0 || m.Rule >= 9 {
				t.Fatalf("match of rule %d", m.Rule)
			}
		}
	})
}

// FuzzCompile compiles rules from arbitrary strings: it must not panic, and
// a mapping that compiles evaluates without panicking.
func FuzzCompile(f *testing.F) {
	f.Add("team-*", "a(b)+", "claims.size() > 0", "groups", "x")
	f.Add("[", "(", "claims.", "a..b", "")
	f.Add("*a*a*a*a*", "(a+)+$", "'x' in claims.groups", `a\.b[0]`, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Fuzz(func(t *testing.T, globPat, re, expr, claim, value string) {
		rm := &rolesyncv1.RoleMapping{}
		rm.Name = "f"
		rm.Spec.Claim = claim
		rm.Spec.Rules = []rolesyncv1.RoleRule{
			{ClaimMatcher: rolesyncv1.ClaimMatcher{Glob: &globPat}, Role: rolesyncv1.RoleInternalUser},
			{ClaimMatcher: rolesyncv1.ClaimMatcher{Regex: &re, CaseInsensitive: true}, Role: rolesyncv1.RoleProxyAdmin},
			{ClaimMatcher: rolesyncv1.ClaimMatcher{Expression: &expr}, Role: rolesyncv1.RoleInternalUserViewer},
			{ClaimMatcher: rolesyncv1.ClaimMatcher{Equals: &value, CaseInsensitive: true}, Role: rolesyncv1.RoleProxyAdminViewer},
		}
		m, errs := Compile(rm)
		if m == nil {
			if len(errs) == 0 {
				t.Fatal("nil mapping without errors")
			}
			return
		}
		e := NewEngine(m)
		d := e.Evaluate(map[string]any{claim: []any{value, globPat, re}, "groups": []any{value}}, "")
		if d.Denied == d.Role.Valid() {
			t.Fatalf("inconsistent decision %+v", d)
		}
	})
}
