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
