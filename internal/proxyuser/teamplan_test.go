package proxyuser

import (
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

func TestPlanTeams(t *testing.T) {
	owned := func(exact ...string) func(string) (bool, bool) {
		return func(team string) (bool, bool) {
			if team == "additive" {
				return true, false
			}
			return slices.Contains(exact, team), slices.Contains(exact, team)
		}
	}
	grant := func(team string, role rolesyncv1.TeamRole) rolesyncv1.TeamMembership {
		return rolesyncv1.TeamMembership{Team: team, Role: role}
	}
	synced := func(teams ...rolesyncv1.TeamMembership) *rolesyncv1.ProxyUserStatus {
		return &rolesyncv1.ProxyUserStatus{Teams: teams, Conditions: []metav1.Condition{{Type: rolesyncv1.ConditionTeamsSynced, Status: metav1.ConditionTrue, Reason: rolesyncv1.ReasonTeamsSynced}}}
	}
	failing := func(teams ...rolesyncv1.TeamMembership) *rolesyncv1.ProxyUserStatus {
		return &rolesyncv1.ProxyUserStatus{Teams: teams, Conditions: []metav1.Condition{{Type: rolesyncv1.ConditionTeamsSynced, Status: metav1.ConditionFalse, Reason: rolesyncv1.ReasonSyncFailed}}}
	}
	for _, tc := range []struct {
		name string
		in   TeamPlanInput
		want string // ops as "+team:role", "+team:role^" (keep higher), "-team", "?" marks a DryRun
	}{
		{"first grant of an exact team", TeamPlanInput{Grants: []rolesyncv1.TeamMembership{grant("a", "user")}, Owned: owned("a"), Status: &rolesyncv1.ProxyUserStatus{}}, "+a:user"},
		{"additive grants never lower", TeamPlanInput{Grants: []rolesyncv1.TeamMembership{grant("additive", "user")}, Owned: owned(), Status: &rolesyncv1.ProxyUserStatus{}}, "+additive:user^"},
		{"exact removes a held team no rule grants", TeamPlanInput{Grants: []rolesyncv1.TeamMembership{grant("a", "admin")}, Owned: owned("a", "b"), Held: []string{"a", "b"}, Status: &rolesyncv1.ProxyUserStatus{}}, "+a:admin -b"},
		{"a granted team left since status: removed", TeamPlanInput{Owned: owned("a"), Status: synced(grant("a", "user"))}, "-a"},
		{"teams the mappings do not own are never removed", TeamPlanInput{Owned: owned("a"), Held: []string{"other", "additive"}, Status: &rolesyncv1.ProxyUserStatus{}}, ""},
		{"a held and granted team is planned once", TeamPlanInput{Grants: []rolesyncv1.TeamMembership{grant("a", "user")}, Owned: owned("a"), Held: []string{"a", "a"}, Status: synced(grant("a", "user"))}, "+a:user"},
		{"report: a synced membership is not re-added", TeamPlanInput{Grants: []rolesyncv1.TeamMembership{grant("a", "user")}, Owned: owned("a"), Status: synced(grant("a", "user")), Report: true}, "+a:user?"},
		{"report: an owned team added behind rolesync's back stays", TeamPlanInput{Grants: []rolesyncv1.TeamMembership{grant("a", "user")}, Owned: owned("a", "b"), Held: []string{"b"}, Status: synced(grant("a", "user")), Report: true}, "+a:user? -b?"},
		{"report: a new grant is still written", TeamPlanInput{Grants: []rolesyncv1.TeamMembership{grant("c", "user")}, Owned: owned("a", "c"), Status: synced(grant("a", "user")), Report: true}, "+c:user -a"},
		{"report after a failure: nothing counts as drift", TeamPlanInput{Grants: []rolesyncv1.TeamMembership{grant("a", "user")}, Owned: owned("a", "b"), Held: []string{"b"}, Status: failing(grant("a", "user")), Report: true}, "+a:user -b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, op := range PlanTeams(tc.in) {
				s := "-" + op.Team
				if !op.Remove {
					s = "+" + op.Team + ":" + string(op.Role)
					if op.KeepHigher {
						s += "^"
					}
				}
				if op.DryRun {
					s += "?"
				}
				got = append(got, s)
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("plan %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}

func TestRecordTeamResult(t *testing.T) {
	in := TeamPlanInput{Grants: []rolesyncv1.TeamMembership{{Team: "a", Role: "user"}}, Owned: func(string) (bool, bool) { return true, true },
		Held: []string{"b"}, Status: &rolesyncv1.ProxyUserStatus{Teams: []rolesyncv1.TeamMembership{{Team: "a", Role: "user"}},
			Conditions: []metav1.Condition{{Type: rolesyncv1.ConditionTeamsSynced, Status: metav1.ConditionTrue}}}}
	ops := PlanTeams(in) // +a (synced before), -b (added behind rolesync's back)
	var tr TeamsResult
	RecordTeamResult(&tr, ops[0], "added", true)
	RecordTeamResult(&tr, ops[1], "removed", true)
	if !slices.Equal(tr.Corrected, []string{"a (removed)", "b (added)"}) || tr.Reported != nil {
		t.Fatalf("enforce: %+v", tr)
	}
	in.Report = true
	ops = PlanTeams(in)
	tr = TeamsResult{}
	RecordTeamResult(&tr, ops[0], "added", true)
	RecordTeamResult(&tr, ops[1], "", true) // b was already gone: no drift
	if !slices.Equal(tr.Reported, []string{"a (removed)"}) || tr.Corrected != nil {
		t.Fatalf("report: %+v", tr)
	}
	tr = TeamsResult{}
	RecordTeamResult(&tr, TeamOp{Team: "ghost", Role: "user"}, "", false)
	RecordTeamResult(&tr, TeamOp{Team: "ghost2", Remove: true}, "", false)
	if !slices.Equal(tr.NotFound, []string{"ghost"}) {
		t.Fatalf("missing teams: %+v", tr.NotFound)
	}
}
