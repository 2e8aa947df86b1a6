package proxyuser

import (
	"slices"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// TeamsResult is what the team step decided and did.
type TeamsResult struct {
	// Active: a mapping of the user's issuer owns teams, or status lists
	// teams (which may have to be removed). Inactive users get no
	// TeamsSynced condition.
	Active bool
	// Grants are the memberships the mappings grant (status.teams).
	Grants []rolesyncv1.TeamMembership
	// Dropped are templated teams outside the granting mapping's allowedTeams.
	Dropped []string
	// NotFound are granted teams that do not exist in LiteLLM.
	NotFound []string
	// Reported are memberships of owned teams changed behind rolesync's
	// back and left so (--drift-policy Report); Corrected were put back.
	Reported, Corrected []string
	Err                 error
	NoDatabase, Waiting bool
}

// Teams decides the teams a user is granted: the namespace's mappings
// (in.Engine) evaluate claims (with the directory's groups, as Decide) for
// in.Issuer, and a user decided as denied gets none. It is the one
// computation the controller, the login server and rolesync diff share.
// td, when not nil, receives the whole team decision (owners, dropped
// grants) and its memory is reused.
func Teams(in Input, claims map[string]any, denied bool, td *rolemap.TeamDecision) []rolesyncv1.TeamMembership {
	if td == nil {
		td = &rolemap.TeamDecision{}
	}
	in.Engine.EvaluateTeamsInto(WithDirectoryGroups(claims, in.Directory, in.GroupsClaim), in.Issuer, td)
	return TeamGrants(in.Namespace, td, denied)
}

// TeamGrants turns the engine's grants into status.teams, sorted by team,
// with sources relative to namespace. A denied user is granted no team.
func TeamGrants(namespace string, td *rolemap.TeamDecision, denied bool) []rolesyncv1.TeamMembership {
	if denied || len(td.Grants) == 0 {
		return nil
	}
	out := make([]rolesyncv1.TeamMembership, 0, len(td.Grants))
	for _, g := range td.Grants {
		out = append(out, rolesyncv1.TeamMembership{Team: g.Team, Role: g.Role,
			Source: rolesyncv1.Truncate(strings.TrimPrefix(g.Describe(), namespace+"/"), 512)})
	}
	slices.SortFunc(out, func(a, b rolesyncv1.TeamMembership) int { return strings.Compare(a.Team, b.Team) })
	return out
}

// SetTeamsStatus writes status.teams and the TeamsSynced condition.
func SetTeamsStatus(pu *rolesyncv1.ProxyUser, tr TeamsResult) {
	st := &pu.Status
	if !tr.Active {
		st.Teams = nil
		apimeta.RemoveStatusCondition(&st.Conditions, rolesyncv1.ConditionTeamsSynced)
		return
	}
	st.Teams = tr.Grants
	set := func(s metav1.ConditionStatus, reason, msg string) {
		apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: rolesyncv1.ConditionTeamsSynced, Status: s, Reason: reason,
			Message: rolesyncv1.Truncate(msg, rolesyncv1.MaxMessageLength), ObservedGeneration: pu.Generation})
	}
	suffix := ""
	if len(tr.Dropped) > 0 {
		suffix = "; dropped (outside the mapping's allowedTeams): " + strings.Join(tr.Dropped, ", ")
	}
	switch {
	case tr.NoDatabase:
		set(metav1.ConditionUnknown, rolesyncv1.ReasonNoDatabase, "no database: teams are resolved into status only"+suffix)
	case tr.Err != nil:
		set(metav1.ConditionFalse, rolesyncv1.ReasonSyncFailed, tr.Err.Error()+"; retrying with backoff"+suffix)
	case tr.Waiting:
		set(metav1.ConditionFalse, rolesyncv1.ReasonWaitingForRow, "the user's LiteLLM row is not bound yet (see Synced); teams follow it"+suffix)
	case len(tr.NotFound) > 0:
		set(metav1.ConditionFalse, rolesyncv1.ReasonTeamNotFound, "teams "+strings.Join(tr.NotFound, ", ")+
			" do not exist in LiteLLM: rolesync never creates teams; retried until they appear"+suffix)
	case len(tr.Reported) > 0:
		set(metav1.ConditionFalse, rolesyncv1.ReasonDriftDetected, "memberships changed outside rolesync in owned teams: "+strings.Join(tr.Reported, ", ")+
			"; --drift-policy=Report leaves them"+suffix)
	case len(tr.Dropped) > 0:
		set(metav1.ConditionTrue, rolesyncv1.ReasonTeamNotAllowed, teamsText(tr.Grants)+suffix)
	case len(tr.Corrected) > 0:
		set(metav1.ConditionTrue, rolesyncv1.ReasonDriftCorrected, teamsText(tr.Grants)+"; put back memberships changed outside rolesync: "+strings.Join(tr.Corrected, ", "))
	default:
		set(metav1.ConditionTrue, rolesyncv1.ReasonTeamsSynced, teamsText(tr.Grants))
	}
}

func teamsText(ms []rolesyncv1.TeamMembership) string {
	if len(ms) == 0 {
		return "no team is granted; LiteLLM holds no membership in an owned team that teamSync Exact would remove"
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Team + " (" + string(m.Role) + ")"
	}
	return "LiteLLM holds the granted memberships: " + strings.Join(parts, ", ")
}
