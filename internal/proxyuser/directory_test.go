package proxyuser

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// TestDirectoryDataInTheDecision: deprovisioning denies before an
// override; once a directory group listed the user, the groups claim is
// the directory's alone (a group it removed is gone, whatever the login
// carried), and the source says so; teams follow the same claims.
func TestDirectoryDataInTheDecision(t *testing.T) {
	m := compiled(t, `metadata: {name: m, namespace: ns}
spec:
  claim: groups
  onNoMatch: Deny
  rules: [{equals: admins, role: proxy_admin}]
  allowedTeams: [ai-*]
  teams: [{equals: admins, team: ai-admins}]
`)
	engine := rolemap.NewEngine(m)
	login := map[string]any{"groups": []any{"admins"}}
	admin := rolesyncv1.Role("proxy_admin")
	for _, tc := range []struct {
		name     string
		dir      *rolesyncv1.DirectoryUser
		override *rolesyncv1.Role
		denied   bool
		reason   string
		fromDir  bool
		teams    int
	}{
		{"no directory: the login's groups", nil, nil, false, rolesyncv1.ReasonResolved, false, 1},
		{"directory never listed the user: the login's groups", &rolesyncv1.DirectoryUser{Active: true}, nil, false, rolesyncv1.ReasonResolved, false, 1},
		{"removed from every group: the login cannot put it back", &rolesyncv1.DirectoryUser{Active: true, GroupsManaged: true}, nil, true, rolesyncv1.ReasonNoMatch, false, 0},
		{"a directory member", &rolesyncv1.DirectoryUser{Active: true, GroupsManaged: true, Groups: []rolesyncv1.DirectoryGroupRef{{ID: "g", DisplayName: "admins"}}}, nil, false, rolesyncv1.ReasonResolved, true, 1},
		{"deprovisioned beats an override", &rolesyncv1.DirectoryUser{Active: false}, &admin, true, rolesyncv1.ReasonDeprovisioned, false, 0},
		{"deleted", &rolesyncv1.DirectoryUser{Active: true, Deleted: true}, nil, true, rolesyncv1.ReasonDeprovisioned, false, 0},
	} {
		in := Input{Namespace: "ns", Engine: engine, Stored: login, Directory: tc.dir, Override: tc.override, GroupsClaim: "groups"}
		d := Decide(in)
		if d.Denied != tc.denied || d.Reason != tc.reason {
			t.Errorf("%s: %+v", tc.name, d.Resolution)
			continue
		}
		if got := d.Source != nil && d.Source.FromDirectory; got != tc.fromDir {
			t.Errorf("%s: source %+v, fromDirectory want %v", tc.name, d.Source, tc.fromDir)
		}
		if teams := Teams(in, in.Stored, d.Denied, nil); len(teams) != tc.teams {
			t.Errorf("%s: teams %v, want %d", tc.name, teams, tc.teams)
		}
	}
	if login["groups"].([]any)[0] != "admins" {
		t.Fatal("WithDirectoryGroups modified the login's claims")
	}
	// ClaimsTime is the newest of the login and the directory's update.
	older, newer := metav1.NewMicroTime(time.Unix(100, 0)), metav1.NewMicroTime(time.Unix(200, 0))
	pu := &rolesyncv1.ProxyUser{Spec: rolesyncv1.ProxyUserSpec{LastLoginTime: &older, Directory: &rolesyncv1.DirectoryUser{UpdatedAt: &newer}}}
	if !ClaimsTime(pu).Equal(newer.Time) {
		t.Fatalf("ClaimsTime %v", ClaimsTime(pu))
	}
}
