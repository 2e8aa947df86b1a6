package review

import (
	"encoding/json"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// engines compiles RoleMapping documents into the engines of namespace ns.
func engines(t *testing.T, ns string, docs ...string) Engines {
	t.Helper()
	var ms []*rolemap.Mapping
	for _, doc := range docs {
		rm := &rolesyncv1.RoleMapping{}
		if err := yaml.UnmarshalStrict([]byte(doc), rm); err != nil {
			t.Fatal(err)
		}
		rm.Namespace = ns
		m, errs := rolemap.Compile(rm)
		if m == nil {
			t.Fatalf("compile %s: %v", rm.Name, errs)
		}
		ms = append(ms, m)
	}
	return Engines{ns: rolemap.NewEngine(ms...)}
}

func user(ns, name string, groups []string, override rolesyncv1.Role) rolesyncv1.ProxyUser {
	pu := rolesyncv1.ProxyUser{}
	pu.Namespace, pu.Name = ns, name
	pu.Spec.UserID = name
	raw, _ := json.Marshal(map[string]any{"groups": groups})
	pu.Spec.Claims = &apiextensionsv1.JSON{Raw: raw}
	if override != "" {
		pu.Spec.RoleOverride = &override
	}
	return pu
}

const base = `
metadata: {name: groups}
spec:
  claim: groups
  onNoMatch: Deny
  rules:
  - {equals: admins, role: proxy_admin}
  - {equals: devs, role: internal_user}
  - {equals: readers, role: internal_user_viewer}
`

const teamsDoc = `
metadata: {name: teams}
spec:
  claim: groups
  allowedTeams: ["ai-*"]
  teamSync: Exact
  teams:
  - {equals: devs, team: ai-devs}
`

func TestDiff(t *testing.T) {
	// The proposal makes readers admins, drops devs, and moves admins to a later rule.
	proposed := `
metadata: {name: groups}
spec:
  claim: groups
  onNoMatch: Deny
  rules:
  - {equals: readers, role: proxy_admin}
  - {equals: admins, role: proxy_admin}
`
	users := []rolesyncv1.ProxyUser{
		user("ns", "dev", []string{"devs"}, ""),
		user("ns", "reader", []string{"readers"}, ""),
		user("ns", "admin", []string{"admins"}, ""),
		user("ns", "nobody", []string{"sales"}, ""),
		user("ns", "pinned", []string{"devs"}, rolesyncv1.RoleProxyAdmin),
	}
	r := Diff(users, engines(t, "ns", base), engines(t, "ns", proposed))
	got := map[string]Change{}
	var order []string
	for _, c := range r.Changes {
		got[c.Name] = c
		order = append(order, c.Name)
	}
	if strings.Join(order, ",") != "reader,admin,dev" {
		t.Fatalf("order %v: a gain to proxy_admin first, then the rest by name", order)
	}
	if c := got["reader"]; !c.Gain || c.Old.Role != rolesyncv1.RoleInternalUserViewer || c.New.Role != rolesyncv1.RoleProxyAdmin {
		t.Fatalf("reader %+v", c)
	}
	if c := got["dev"]; c.Gain || !c.New.Denied || c.New.Reason != rolesyncv1.ReasonNoMatch || c.New.String() != "denied (NoMatch)" {
		t.Fatalf("dev %+v", c)
	}
	if c := got["admin"]; c.Gain || c.Old.Role != c.New.Role || c.Old.Source == c.New.Source {
		t.Fatalf("admin (same role, another rule) %+v", c)
	}
	if _, listed := got["nobody"]; listed {
		t.Fatal("a user denied before and after is listed")
	}
	if r.Gains != 1 || r.Users != 5 || r.Summary() != "3 of 5 users change (1 gain privilege)" {
		t.Fatalf("summary %q (gains %d)", r.Summary(), r.Gains)
	}
	if len(r.Overridden) != 1 || r.Overridden[0].Name != "pinned" || !r.Overridden[0].New.Denied {
		t.Fatalf("overridden %+v: listed apart, with what its claims alone would give", r.Overridden)
	}
	if len(r.Transitions) == 0 || !r.Transitions[0].Gain || r.Transitions[0].From != "internal_user_viewer" || r.Transitions[0].To != "proxy_admin" {
		t.Fatalf("transitions %+v: gains first", r.Transitions)
	}
}

func TestDiffTeams(t *testing.T) {
	users := []rolesyncv1.ProxyUser{user("ns", "dev", []string{"devs"}, ""), user("ns", "reader", []string{"readers"}, "")}
	r := Diff(users, engines(t, "ns", base), engines(t, "ns", base, teamsDoc))
	if len(r.Changes) != 1 || r.Changes[0].Name != "dev" || strings.Join(r.Changes[0].TeamsGained, ",") != "ai-devs (user)" {
		t.Fatalf("team grant: %+v", r.Changes)
	}
	r = Diff(users, engines(t, "ns", base, teamsDoc), engines(t, "ns", base))
	if len(r.Changes) != 1 || strings.Join(r.Changes[0].TeamsLost, ",") != "ai-devs (user)" {
		t.Fatalf("team removal: %+v", r.Changes)
	}
}

func TestDiffNamespaceWithoutMappings(t *testing.T) {
	users := []rolesyncv1.ProxyUser{user("other", "x", []string{"admins"}, "")}
	r := Diff(users, Engines{"other": engines(t, "other", base)["other"]}, Engines{})
	if len(r.Changes) != 1 || !r.Changes[0].New.Denied || r.Changes[0].New.Reason != rolesyncv1.ReasonNoRoleMapping {
		t.Fatalf("%+v", r.Changes)
	}
	if r := Diff(users, Engines{}, Engines{}); len(r.Changes) != 0 || r.Summary() != "0 of 1 users change (0 gain privilege)" {
		t.Fatalf("no mappings either side: %+v", r)
	}
}

// TestTeamJoinsAndTeamAdminAreGains: joining a team, or becoming a team's
// admin, is a privilege gain of its own category (TeamGains) that fails
// --fail-on escalation (Escalates); leaving a team is not.
func TestTeamJoinsAndTeamAdminAreGains(t *testing.T) {
	const m = `
metadata: {name: m}
spec:
  claim: groups
  rules: [{glob: "*", role: internal_user}]
  allowedTeams: [ai-*]
  teams:
%s`
	b := engines(t, "ns", strings.ReplaceAll(m, "%s", "  - {equals: devs, team: ai-devs}\n  - {equals: ops, team: ai-ops}\n"))
	p := engines(t, "ns", strings.ReplaceAll(m, "%s", "  - {equals: devs, team: ai-devs, teamRole: admin}\n  - {equals: labs, team: ai-labs}\n"))
	users := []rolesyncv1.ProxyUser{
		user("ns", "dev", []string{"devs"}, ""),  // ai-devs user -> admin
		user("ns", "lab", []string{"labs"}, ""),  // joins ai-labs
		user("ns", "ops", []string{"ops"}, ""),   // leaves ai-ops
		user("ns", "idle", []string{"none"}, ""), // nothing
	}
	r := Diff(users, b, p)
	got := map[string]bool{}
	for _, c := range r.Changes {
		got[c.Name] = c.TeamGain
		if c.Gain {
			t.Errorf("%s: a team change is not a role gain", c.Name)
		}
	}
	if len(got) != 3 || !got["dev"] || !got["lab"] || got["ops"] {
		t.Fatalf("team gains %v, want dev and lab (ops only changes)", got)
	}
	if r.TeamGains != 2 || r.Gains != 0 || !r.Escalates() || !strings.Contains(r.Summary(), "2 gain teams") {
		t.Fatalf("report %+v: %s", r, r.Summary())
	}
	if r.Changes[0].Name != "dev" && r.Changes[0].Name != "lab" {
		t.Fatalf("team gains are listed before other changes: %v", r.Changes)
	}
	if r := Diff(users[2:], b, p); r.Escalates() {
		t.Fatalf("leaving a team escalates: %+v", r)
	}
}

// TestOverriddenUsersGetTheTeamsTheControllerGrants: the controller grants
// a user with spec.roleOverride the teams of their claims even when the
// claims alone would be denied; the review predicts exactly that.
func TestOverriddenUsersGetTheTeamsTheControllerGrants(t *testing.T) {
	const m = `
metadata: {name: m}
spec:
  claim: groups
  onNoMatch: Deny
  rules: [{equals: devs, role: internal_user}]
  allowedTeams: [ai-*]
  teams:
%s`
	b := engines(t, "ns", strings.ReplaceAll(m, "%s", "  - {equals: devs, team: ai-devs}\n"))
	p := engines(t, "ns", strings.ReplaceAll(m, "%s", "  - {equals: devs, team: ai-devs}\n  - {equals: contractors, team: ai-contractors}\n"))
	// The claims alone are denied (no role rule matches contractors).
	r := Diff([]rolesyncv1.ProxyUser{user("ns", "pinned", []string{"contractors"}, rolesyncv1.RoleInternalUser)}, b, p)
	if len(r.Changes) != 1 || !r.Changes[0].TeamGain || strings.Join(r.Changes[0].TeamsGained, ",") != "ai-contractors (user)" ||
		r.Changes[0].New.Role != rolesyncv1.RoleInternalUser || r.TeamGains != 1 {
		t.Fatalf("changes %+v", r.Changes)
	}
}

// TestUnknownClaimsAreReported: a proposed rule that reads a claim the
// mappings in force neither read nor keep cannot be decided from stored
// claims: the review says so, and a rule that could grant more escalates.
// Kept first (spec.keepClaims), the claim is known: a user without it did
// not have it.
func TestUnknownClaimsAreReported(t *testing.T) {
	withDept := `
metadata: {name: groups}
spec:
  claim: groups
  onNoMatch: Deny
  rules:
  - {equals: devs, role: internal_user}
  - {claim: department, equals: finance, role: proxy_admin}
`
	users := []rolesyncv1.ProxyUser{user("ns", "a", []string{"devs"}, ""), user("ns", "b", []string{"devs"}, ""), user("ns", "c", []string{"readers"}, "")}
	r := Diff(users, engines(t, "ns", base), engines(t, "ns", withDept))
	var dept *UnknownClaim
	for i := range r.Unknown {
		if r.Unknown[i].Claim == "department" {
			dept = &r.Unknown[i]
		}
	}
	if dept == nil || dept.Users != 3 || dept.CouldGain != 3 || r.UnknownGains != 3 || !r.Escalates() {
		t.Fatalf("unknown %+v, unknownGains %d", r.Unknown, r.UnknownGains)
	}
	for _, u := range r.Unknown {
		if u.Claim == "groups" {
			t.Fatalf("groups is read by the mapping in force: known, got %+v", u)
		}
	}
	if !strings.Contains(r.Summary(), "outcome unknown at next login for 3 or more users (3 could gain)") {
		t.Fatal(r.Summary())
	}

	// Kept by the mapping in force: stored at every login, so known.
	kept := strings.Replace(base, "  claim: groups\n", "  claim: groups\n  keepClaims: [department]\n", 1)
	if r := Diff(users, engines(t, "ns", kept), engines(t, "ns", withDept)); len(r.Unknown) != 0 || r.Escalates() {
		t.Fatalf("a kept claim is known: %+v", r.Unknown)
	}
	// A rule that grants less than the user has already: unknown, no gain.
	lower := strings.Replace(withDept, "role: proxy_admin}", "role: internal_user_viewer}", 1)
	r = Diff(users[:2], engines(t, "ns", base), engines(t, "ns", lower))
	if len(r.Unknown) != 1 || r.Unknown[0].CouldGain != 0 || r.UnknownGains != 0 {
		t.Fatalf("a rule granting less: %+v", r.Unknown)
	}
}
