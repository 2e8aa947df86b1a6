package rolemap

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

func parseMapping(t testing.TB, doc string) *rolesyncv1.RoleMapping {
	t.Helper()
	rm := &rolesyncv1.RoleMapping{}
	if err := yaml.UnmarshalStrict([]byte(doc), rm); err != nil {
		t.Fatalf("mapping: %v\n%s", err, doc)
	}
	if rm.Namespace == "" {
		rm.Namespace = "ns"
	}
	return rm
}

func engineOf(t testing.TB, docs ...string) *Engine {
	t.Helper()
	var ms []*Mapping
	for _, doc := range docs {
		m, errs := Compile(parseMapping(t, doc))
		if len(errs) > 0 {
			t.Fatalf("compile: %v\n%s", errs.ToAggregate(), doc)
		}
		ms = append(ms, m)
	}
	return NewEngine(ms...)
}

func claimsOf(t testing.TB, s string) map[string]any {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return c
}

type evalCase struct {
	name    string
	claims  string
	issuer  string
	role    rolesyncv1.Role // "" when denied
	reason  string
	source  string // Source.Describe(), "" to skip
	matches int    // -1 to skip
}

func runCases(t *testing.T, e *Engine, cases []evalCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Evaluate(claimsOf(t, tc.claims), tc.issuer)
			if d.Role != tc.role || d.Denied != (tc.role == "") || d.Reason != tc.reason {
				t.Fatalf("got role=%q denied=%v reason=%s (%s); want role=%q reason=%s", d.Role, d.Denied, d.Reason, d.Message(), tc.role, tc.reason)
			}
			if tc.source != "" && d.Source.Describe() != tc.source {
				t.Errorf("source = %q, want %q", d.Source.Describe(), tc.source)
			}
			if tc.matches >= 0 && len(d.Matches) != tc.matches {
				t.Errorf("matches = %+v, want %d", d.Matches, tc.matches)
			}
		})
	}
}

func TestClaimValueShapes(t *testing.T) {
	e := engineOf(t, `
metadata: {name: m}
spec:
  claim: roles
  rules:
  - {equals: admin, role: proxy_admin}
  - {equals: "42", role: internal_user}
  - {equals: "true", role: internal_user_viewer}
  - {claim: 'https://example\.com/roles', equals: auditor, role: proxy_admin_viewer}
  - {claim: 'nested.list[1]', equals: second, role: internal_user}
  - {claim: scope, split: " ", equals: "litellm:admin", role: proxy_admin}
`)
	runCases(t, e, []evalCase{
		{"string is a one-element list", `{"roles":"admin"}`, "", "proxy_admin", ReasonMatched, "ns/m#0 roles=admin", 1},
		{"list of strings", `{"roles":["x","admin"]}`, "", "proxy_admin", ReasonMatched, "ns/m#0 roles=admin", 1},
		{"number as JSON text", `{"roles":42}`, "", "internal_user", ReasonMatched, "ns/m#1 roles=42", 1},
		{"number in a list", `{"roles":[7,42]}`, "", "internal_user", ReasonMatched, "", 1},
		{"bool as JSON text", `{"roles":true}`, "", "internal_user_viewer", ReasonMatched, "", 1},
		{"escaped dot in key", `{"https://example.com/roles":["auditor"]}`, "", "proxy_admin_viewer", ReasonMatched, "ns/m#3 https://example\\.com/roles=auditor", 1},
		{"array index", `{"nested":{"list":["first","second"]}}`, "", "internal_user", ReasonMatched, "", 1},
		{"array index out of range", `{"nested":{"list":["first"]}}`, "", "", ReasonNoMatch, "", 0},
		{"split scope string", `{"scope":"openid email litellm:admin"}`, "", "proxy_admin", ReasonMatched, "ns/m#5 scope=litellm:admin", 1},
		{"missing path", `{"other":["admin"]}`, "", "", ReasonNoMatch, "", 0},
		{"object value matches nothing", `{"roles":{"admin":true}}`, "", "", ReasonNoMatch, "", 0},
		{"nested list element matches nothing", `{"roles":[["admin"]]}`, "", "", ReasonNoMatch, "", 0},
		{"null matches nothing", `{"roles":null}`, "", "", ReasonNoMatch, "", 0},
	})
}

func TestMatchers(t *testing.T) {
	e := engineOf(t, `
metadata: {name: m}
spec:
  claim: groups
  resolution: FirstMatch
  rules:
  - {equals: Admins, role: proxy_admin}
  - {equals: Auditors, caseInsensitive: true, role: proxy_admin_viewer}
  - {glob: "/org/*/ml", role: internal_user}
  - {regex: "team-(\\d+)-dev", role: internal_user}
  - {regex: "view", role: internal_user_viewer}
  - {glob: "*-READERS", caseInsensitive: true, role: internal_user_viewer}
  - {expression: "has(claims.email_verified) && claims.email_verified && claims.email.endsWith('@corp.example')", role: internal_user}
`)
	runCases(t, e, []evalCase{
		{"equals is case-sensitive", `{"groups":["admins"]}`, "", "", ReasonNoMatch, "", 0},
		{"equals exact", `{"groups":["Admins"]}`, "", "proxy_admin", ReasonMatched, "ns/m#0 groups=Admins", 1},
		{"equals caseInsensitive", `{"groups":["aUDITORS"]}`, "", "proxy_admin_viewer", ReasonMatched, "ns/m#1 groups=aUDITORS", 1},
		{"glob star crosses slashes", `{"groups":["/org/a/b/ml"]}`, "", "internal_user", ReasonMatched, "ns/m#2 groups=/org/a/b/ml", 1},
		{"glob no match", `{"groups":["/org/a/ml/x"]}`, "", "", ReasonNoMatch, "", 0},
		{"regex anchored whole value", `{"groups":["team-12-dev"]}`, "", "internal_user", ReasonMatched, "ns/m#3 groups=team-12-dev", 1},
		{"regex is not a substring search", `{"groups":["xteam-12-dev", "preview"]}`, "", "", ReasonNoMatch, "", 0},
		{"glob caseInsensitive suffix", `{"groups":["sg-ai-readers"]}`, "", "internal_user_viewer", ReasonMatched, "", 1},
		{"expression", `{"email":"a@corp.example","email_verified":true}`, "", "internal_user", ReasonMatched, "ns/m#6 expression", 1},
		{"expression on missing claim is false", `{"email":"a@corp.example"}`, "", "", ReasonNoMatch, "", 0},
		{"first match in rule order", `{"groups":["view","Admins"]}`, "", "proxy_admin", ReasonMatched, "ns/m#0 groups=Admins", 2},
	})
}

func TestResolutionWithinMapping(t *testing.T) {
	const rules = `
  claim: groups
  rules:
  - {glob: "user_*", role: internal_user_viewer}
  - {glob: "admin_*", role: proxy_admin}
  - {equals: "user_lead", role: internal_user}
`
	hp := engineOf(t, "metadata: {name: hp}\nspec:"+rules)
	fm := engineOf(t, "metadata: {name: fm}\nspec:\n  resolution: FirstMatch"+rules)
	claims := `{"groups":["user_lead","admin_x"]}`
	runCases(t, hp, []evalCase{{"highest privilege", claims, "", "proxy_admin", ReasonMatched, "ns/hp#1 groups=admin_x", 3}})
	runCases(t, fm, []evalCase{{"first match", claims, "", "internal_user_viewer", ReasonMatched, "ns/fm#0 groups=user_lead", 3}})
}

// LiteLLM's jwt_litellm_role_map: mappings in config order, fnmatch,
// case-sensitive, the first mapping with any matching role wins. FirstMatch
// reproduces it exactly (for list-valued claims, which is all LiteLLM reads).
func TestLiteLLMCompatibility(t *testing.T) {
	e := engineOf(t, `
metadata: {name: litellm}
spec:
  claim: roles
  resolution: FirstMatch
  rules:
  - {glob: "user_*", role: internal_user}
  - {glob: "team_?", role: internal_user_viewer}
  - {glob: "admin", role: proxy_admin}
  - {glob: "[ab]uditor", role: proxy_admin_viewer}
`)
	runCases(t, e, []evalCase{
		{"user_* matches user_alice", `{"roles":["user_alice"]}`, "", "internal_user", ReasonMatched, "ns/litellm#0 roles=user_alice", -1},
		{"user_* matches user_", `{"roles":["user_"]}`, "", "internal_user", ReasonMatched, "", -1},
		{"user_* does not match User_x", `{"roles":["User_x"]}`, "", "", ReasonNoMatch, "", -1},
		{"team_? matches team_a", `{"roles":["team_a"]}`, "", "internal_user_viewer", ReasonMatched, "", -1},
		{"team_? does not match team_ab", `{"roles":["team_ab"]}`, "", "", ReasonNoMatch, "", -1},
		{"config order beats privilege", `{"roles":["admin","user_x"]}`, "", "internal_user", ReasonMatched, "ns/litellm#0 roles=user_x", -1},
		{"[ab]uditor", `{"roles":["buditor"]}`, "", "proxy_admin_viewer", ReasonMatched, "", -1},
		{"string claim (LiteLLM drops it) works here", `{"roles":"admin"}`, "", "proxy_admin", ReasonMatched, "", -1},
	})
}

func TestAcrossMappings(t *testing.T) {
	e := engineOf(t,
		`
metadata: {name: keycloak}
spec:
  issuer: https://kc
  priority: 100
  claim: groups
  rules: [{equals: ml, role: internal_user}]
  onNoMatch: Default
  defaultRole: internal_user_viewer
`, `
metadata: {name: a-low}
spec:
  priority: 10
  claim: groups
  rules: [{equals: ops, role: proxy_admin}, {equals: ml, role: proxy_admin}]
`, `
metadata: {name: b-peer}
spec:
  priority: 10
  claim: groups
  rules: [{equals: ops, role: proxy_admin_viewer}]
  onNoMatch: Default
  defaultRole: internal_user
`, `
metadata: {name: c-peer}
spec:
  priority: 10
  claim: groups
  rules: [{equals: ops, role: proxy_admin}]
`)
	runCases(t, e, []evalCase{
		{"higher priority mapping decides", `{"groups":["ml"]}`, "https://kc", "internal_user", ReasonMatched, "ns/keycloak#0 groups=ml", 2},
		{"issuer scopes the mapping", `{"groups":["ml"]}`, "https://other", "proxy_admin", ReasonMatched, "ns/a-low#1 groups=ml", 1},
		{"equal priority: highest privilege, then name", `{"groups":["ops"]}`, "https://other", "proxy_admin", ReasonMatched, "ns/a-low#0 groups=ops", 3},
		{"no match: top applicable mapping's default", `{"groups":["x"]}`, "https://kc", "internal_user_viewer", ReasonDefault, "ns/keycloak default", 0},
		{"no match among equal priorities: highest default", `{"groups":["x"]}`, "https://other", "internal_user", ReasonDefault, "ns/b-peer default", 0},
	})
	runCases(t, NewEngine(), []evalCase{{"no mapping at all", `{}`, "", "", ReasonNoRoleMapping, "", 0}})
	only := engineOf(t, "metadata: {name: kc}\nspec:\n  issuer: https://kc\n  claim: g\n")
	runCases(t, only, []evalCase{{"no applicable mapping", `{"g":["x"]}`, "https://other", "", ReasonNoRoleMapping, "", 0}})
}

func TestMaxRoleCeilingInEngine(t *testing.T) {
	// Validation refuses a rule above maxRole; build such a mapping by hand to
	// check the engine's own guarantee.
	m, errs := Compile(parseMapping(t, "metadata: {name: m}\nspec:\n  claim: g\n  rules: [{equals: a, role: proxy_admin}]\n"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	m.MaxRole, m.maxRank = rolesyncv1.RoleInternalUser, rolesyncv1.RoleInternalUser.Rank()
	d := NewEngine(m).Evaluate(map[string]any{"g": "a"}, "")
	if d.Role != rolesyncv1.RoleInternalUser {
		t.Fatalf("role %s above the ceiling", d.Role)
	}
}

func TestValidationErrors(t *testing.T) {
	cases := []struct {
		name, spec, field, msg string
	}{
		{"invalid regex", "  claim: g\n  rules: [{regex: 'a(', role: internal_user}]", "spec.rules[0].regex", "missing closing )"},
		{"CEL does not compile", "  rules: [{expression: 'claims.', role: internal_user}]", "spec.rules[0].expression", "does not compile"},
		{"CEL not bool", "  rules: [{expression: 'claims.email', role: internal_user}]", "spec.rules[0].expression", "must return bool"},
		{"role above ceiling", "  claim: g\n  maxRole: internal_user\n  rules: [{equals: a, role: proxy_admin}]", "spec.rules[0].role", "above maxRole"},
		{"default above ceiling", "  maxRole: internal_user_viewer\n  onNoMatch: Default\n  defaultRole: proxy_admin", "spec.defaultRole", "above maxRole"},
		{"duplicate rule", "  claim: g\n  rules: [{equals: a, role: internal_user}, {equals: a, role: proxy_admin}]", "spec.rules[1]", "same matcher"},
		{"unparseable claim path", "  rules: [{claim: 'a..b', equals: a, role: internal_user}]", "spec.rules[0].claim", "empty key"},
		{"unparseable default claim", "  claim: 'a['\n  rules: [{equals: a, role: internal_user}]", "spec.claim", "unclosed"},
		{"no claim path", "  rules: [{equals: a, role: internal_user}]", "spec.rules[0].claim", "needs a claim path"},
		{"two matchers", "  claim: g\n  rules: [{equals: a, glob: b, role: internal_user}]", "spec.rules[0]", "exactly one"},
		{"no matcher", "  claim: g\n  rules: [{role: internal_user}]", "spec.rules[0]", "exactly one"},
		{"unknown role", "  claim: g\n  rules: [{equals: a, role: team}]", "spec.rules[0].role", "Unsupported value"},
		{"Default without defaultRole", "  onNoMatch: Default", "spec.defaultRole", "required"},
		{"priority out of range", "  priority: 1001", "spec.priority", "between 0 and 1000"},
		{"expression with claim", "  rules: [{expression: 'true', claim: g, role: internal_user}]", "spec.rules[0]", "do not apply"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, errs := Compile(parseMapping(t, "metadata: {name: bad}\nspec:\n"+tc.spec+"\n"))
			if m != nil || len(errs) == 0 {
				t.Fatal("compiled; want an error")
			}
			agg := errs.ToAggregate().Error()
			if !strings.Contains(agg, tc.field) || !strings.Contains(agg, tc.msg) {
				t.Fatalf("error %q does not name %q / %q", agg, tc.field, tc.msg)
			}
		})
	}
}

func TestEvaluateIntoDoesNotAllocate(t *testing.T) {
	e := engineOf(t, `
metadata: {name: m}
spec:
  claim: groups
  rules:
  - {equals: a, role: internal_user}
  - {equals: B, caseInsensitive: true, role: internal_user}
  - {glob: "team-*", role: internal_user}
  - {glob: "*-admins", role: proxy_admin}
  - {glob: "SG-*", caseInsensitive: true, role: internal_user}
  - {regex: "grp-[0-9]+", role: internal_user_viewer}
`)
	claims := claimsOf(t, `{"groups":["a","b","team-1","x-admins","sg-x","grp-12","zzz"]}`)
	var d Decision
	e.EvaluateInto(claims, "", &d)
	if len(d.Matches) != 6 {
		t.Fatalf("matches: %+v", d.Matches)
	}
	if n := testing.AllocsPerRun(200, func() { e.EvaluateInto(claims, "", &d) }); n != 0 {
		t.Fatalf("EvaluateInto allocates %v times per call", n)
	}
}
