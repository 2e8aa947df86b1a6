package proxyuser

import (
	"errors"
	"strings"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/rolemap"
)

func TestSetTeamsStatus(t *testing.T) {
	grants := []rolesyncv1.TeamMembership{{Team: "ai-search", Role: rolesyncv1.TeamRoleAdmin, Source: "keycloak#teams[1] groups=/ai/leads"}}
	for _, tc := range []struct {
		name           string
		tr             TeamsResult
		status, reason string
		says           string
	}{
		{"synced", TeamsResult{Active: true, Grants: grants}, "True", rolesyncv1.ReasonTeamsSynced, "ai-search (admin)"},
		{"missing team", TeamsResult{Active: true, Grants: grants, NotFound: []string{"ai-search"}}, "False", rolesyncv1.ReasonTeamNotFound, "never creates teams"},
		{"dropped template", TeamsResult{Active: true, Grants: grants, Dropped: []string{"x-labs"}}, "True", rolesyncv1.ReasonTeamNotAllowed, "x-labs"},
		{"drift reported", TeamsResult{Active: true, Grants: grants, Reported: []string{"ai-search (removed)"}}, "False", rolesyncv1.ReasonDriftDetected, "Report"},
		{"drift corrected", TeamsResult{Active: true, Grants: grants, Corrected: []string{"ai-search (removed)"}}, "True", rolesyncv1.ReasonDriftCorrected, "put back"},
		{"no database", TeamsResult{Active: true, Grants: grants, NoDatabase: true}, "Unknown", rolesyncv1.ReasonNoDatabase, ""},
		{"row not bound", TeamsResult{Active: true, Grants: grants, Waiting: true}, "False", rolesyncv1.ReasonWaitingForRow, ""},
		{"failure", TeamsResult{Active: true, Grants: grants, Err: errors.New("connection refused")}, "False", rolesyncv1.ReasonSyncFailed, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pu := &rolesyncv1.ProxyUser{}
			pu.Generation = 3
			SetTeamsStatus(pu, tc.tr)
			c := apimeta.FindStatusCondition(pu.Status.Conditions, rolesyncv1.ConditionTeamsSynced)
			if c == nil || string(c.Status) != tc.status || c.Reason != tc.reason || !strings.Contains(c.Message, tc.says) || c.ObservedGeneration != 3 {
				t.Fatalf("condition %+v, want %s/%s saying %q", c, tc.status, tc.reason, tc.says)
			}
			if len(pu.Status.Teams) != 1 || pu.Status.Teams[0] != grants[0] {
				t.Fatalf("status.teams %+v", pu.Status.Teams)
			}
		})
	}
	// A user no mapping gives teams to (and who held none) gets no condition.
	pu := &rolesyncv1.ProxyUser{}
	SetTeamsStatus(pu, TeamsResult{Active: true, Grants: grants})
	SetTeamsStatus(pu, TeamsResult{})
	if pu.Status.Teams != nil || apimeta.FindStatusCondition(pu.Status.Conditions, rolesyncv1.ConditionTeamsSynced) != nil {
		t.Fatalf("inactive: %+v", pu.Status)
	}
}

func TestTeamGrantsDeniedAndSorted(t *testing.T) {
	td := rolemap.TeamDecision{Grants: []rolemap.TeamGrant{
		{Team: "b", Role: rolesyncv1.TeamRoleUser, RoleMapping: "ns/m", Rule: 1, Claim: "groups", Value: "x"},
		{Team: "a", Role: rolesyncv1.TeamRoleAdmin, RoleMapping: "ns/m", Rule: 0, Claim: "groups", Value: "y"},
	}}
	got := TeamGrants("ns", &td, false)
	if len(got) != 2 || got[0].Team != "a" || got[0].Source != "m#teams[0] groups=y" {
		t.Fatalf("grants %+v", got)
	}
	if TeamGrants("ns", &td, true) != nil {
		t.Fatal("a denied user was granted teams")
	}
}
