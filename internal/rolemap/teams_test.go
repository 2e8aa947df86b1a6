package rolemap

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

func teamMapping(t *testing.T, doc string) *rolesyncv1.RoleMapping {
	t.Helper()
	rm := &rolesyncv1.RoleMapping{}
	if err := yaml.UnmarshalStrict([]byte(doc), rm); err != nil {
		t.Fatal(err)
	}
	if rm.Namespace == "" {
		rm.Namespace = "ai"
	}
	return rm
}

func mustCompile(t *testing.T, doc string) *Mapping {
	t.Helper()
	m, errs := Compile(teamMapping(t, doc))
	if len(errs) > 0 {
		t.Fatalf("compile: %v", errs)
	}
	return m
}

const keycloakTeams = `metadata: {name: keycloak}
spec:
  issuer: https://kc.example.com/realms/ai
  claim: groups
  rules:
  - {glob: "/ai/*", role: internal_user}
  allowedTeams: ["ai-*", "platform"]
  teamSync: Exact
  teams:
  - {regex: "/ai/(.+)", team: "ai-$1"}
  - {equals: /ai/search, team: ai-search, teamRole: admin}
  - {equals: /ai/search, team: platform}
  - {regex: "/ai/(.+)", team: "x-$1"}
`

func TestTeamRulesGrantTemplateAndOwn(t *testing.T) {
	e := NewEngine(mustCompile(t, keycloakTeams), mustCompile(t, `metadata: {name: entra}
spec:
  claim: roles
  allowedTeams: ["ai-search"]
  teams:
  - {equals: Search.Admin, team: ai-search, teamRole: admin}
  - {equals: Search.User, team: ai-search}
`))
	td := e.EvaluateTeams(map[string]any{"groups": []any{"/ai/search", "/ai/labs", "/other"}, "roles": []any{"Search.User"}}, "https://kc.example.com/realms/ai")
	got := map[string]string{}
	for _, g := range td.Grants {
		got[g.Team] = string(g.Role) + " " + g.Describe()
	}
	want := map[string]string{
		"ai-search": "admin ai/keycloak#teams[1] groups=/ai/search", // the higher role of two grants
		"ai-labs":   "user ai/keycloak#teams[0] groups=/ai/labs",    // $1 of the regex
		"platform":  "user ai/keycloak#teams[2] groups=/ai/search",
	}
	if len(got) != len(want) {
		t.Fatalf("grants %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	// x-search and x-labs fall outside allowedTeams: dropped, reported.
	if len(td.Dropped) != 2 || !strings.HasPrefix(td.Dropped[0].Team, "x-") {
		t.Fatalf("dropped %+v", td.Dropped)
	}
	// Ownership: keycloak owns ai-* (Exact), entra owns ai-search (Additive).
	if owned, exact := td.Owned("ai-other"); !owned || !exact {
		t.Fatalf("ai-other owned %v exact %v", owned, exact)
	}
	if owned, _ := td.Owned("finance"); owned {
		t.Fatal("finance is owned by no mapping")
	}
	// Another issuer: only the issuer-less mapping applies.
	td = e.EvaluateTeams(map[string]any{"groups": []any{"/ai/search"}, "roles": []any{"Search.Admin"}}, "https://other.example.com")
	if len(td.Grants) != 1 || td.Grants[0].Team != "ai-search" || td.Grants[0].Role != rolesyncv1.TeamRoleAdmin || len(td.Owners) != 1 {
		t.Fatalf("other issuer: %+v", td)
	}
}

func TestTeamRulesRefusedWithFieldPaths(t *testing.T) {
	for _, tc := range []struct{ spec, field string }{
		{"  claim: groups\n  teams:\n  - {equals: a, team: t}\n", "spec.allowedTeams"},
		{"  claim: groups\n  allowedTeams: [ai-*]\n  teams:\n  - {equals: a, team: finance}\n", "spec.teams[0].team"},
		{"  claim: groups\n  allowedTeams: [ai-*]\n  teams:\n  - {glob: 'a*', team: ai-$1}\n", "spec.teams[0].team"},
		{"  claim: groups\n  allowedTeams: [ai-*]\n  teams:\n  - {regex: '(a)', team: ai-$2}\n", "spec.teams[0].team"},
		{"  claim: groups\n  allowedTeams: [ai-*]\n  teams:\n  - {expression: 'true', team: ai-$0}\n", "spec.teams[0].team"},
		{"  claim: groups\n  allowedTeams: [ai-*]\n  teams:\n  - {regex: '(', team: ai-x}\n", "spec.teams[0].regex"},
		{"  claim: groups\n  allowedTeams: [ai-*]\n  teams:\n  - {equals: a, team: ai-x, teamRole: owner}\n", "spec.teams[0].teamRole"},
		{"  claim: groups\n  allowedTeams: ['']\n", "spec.allowedTeams[0]"},
		{"  claim: groups\n  allowedTeams: [ai-*]\n  teams:\n  - {equals: a, team: ai-$x}\n", "spec.teams[0].team"},
		{"  claim: groups\n  allowedTeams: [ai-*]\n  teamSync: Sometimes\n", "spec.teamSync"},
	} {
		_, errs := Compile(teamMapping(t, "metadata: {name: m}\nspec:\n"+tc.spec))
		found := false
		for _, e := range errs {
			found = found || e.Field == tc.field
		}
		if !found {
			t.Errorf("%s: errors %v, want one at %s", tc.spec, errs, tc.field)
		}
	}
}

func TestTeamClaimPathsAreKept(t *testing.T) {
	m := mustCompile(t, `metadata: {name: m}
spec:
  claim: groups
  rules: [{equals: a, role: internal_user}]
  allowedTeams: [ai-*]
  teams:
  - {claim: department, equals: search, team: ai-search}
`)
	if !contains(m.ClaimPaths(), "department") || !contains(m.ClaimPaths(), "groups") {
		t.Fatalf("claim paths %v: the login server must keep what team rules read", m.ClaimPaths())
	}
}

func TestTeamEvaluationReusesMemory(t *testing.T) {
	e := NewEngine(mustCompile(t, keycloakTeams))
	claims := map[string]any{"groups": []any{"/ai/search", "/other"}}
	var td TeamDecision
	e.EvaluateTeamsInto(claims, "https://kc.example.com/realms/ai", &td)
	// Literal teams (the hot path of most mappings) allocate nothing once
	// the decision's memory is warm; templated ones build their string.
	lit := NewEngine(mustCompile(t, `metadata: {name: m}
spec:
  claim: groups
  allowedTeams: [ai-*]
  teams:
  - {equals: /ai/search, team: ai-search}
  - {glob: "/ai/*", team: ai-all}
`))
	lit.EvaluateTeamsInto(claims, "", &td)
	if n := testing.AllocsPerRun(100, func() { lit.EvaluateTeamsInto(claims, "", &td) }); n != 0 {
		t.Fatalf("%v allocations per evaluation, want 0", n)
	}
}
