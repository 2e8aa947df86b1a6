package proxyuser

import (
	"slices"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// TeamOp is one planned membership change of one user: an add (or role
// change) of a granted team, or a removal from an owned team no rule grants.
type TeamOp struct {
	Team string
	// Role is the granted role (adds only).
	Role   rolesyncv1.TeamRole
	Remove bool
	// KeepHigher leaves a member whose role is above Role as is (Additive
	// sync never lowers a role an admin raised).
	KeepHigher bool
	// DryRun: the op would put back drift that --drift-policy=Report only
	// reports; it must not be written.
	DryRun bool
	// driftIf is the change the op makes when it finds drift: "added" for a
	// synced membership gone, "removed" for one added behind rolesync's back;
	// "" when the op cannot be drift.
	driftIf string
}

// TeamPlanInput is what the plan is made from: no I/O happened yet except
// reading the user's teams array.
type TeamPlanInput struct {
	// Grants are the memberships the mappings grant now (TeamGrants).
	Grants []rolesyncv1.TeamMembership
	// Owned reports whether a mapping owns team and whether it keeps it
	// exact (rolemap.TeamDecision.Owned).
	Owned func(team string) (owned, exact bool)
	// Held is the user's teams array in LiteLLM.
	Held []string
	// Status is the user's status as the last reconcile wrote it.
	Status *rolesyncv1.ProxyUserStatus
	// Report: --drift-policy=Report (drift is reported, never put back).
	Report bool
}

// PlanTeams decides the membership changes that make LiteLLM hold exactly
// what rolesync grants in the teams it owns: every grant added (Additive
// mappings never lower a role), and, for teams an Exact mapping owns, a
// removal of every membership no rule grants (from LiteLLM's teams array
// and from status.teams). Teams no mapping owns are never touched. Under
// Report, an op that would undo a change made behind rolesync's back
// (a granted and synced membership gone, a membership added to an owned
// team) is a DryRun. It is pure: table-tested without a database.
func PlanTeams(in TeamPlanInput) []TeamOp {
	// The memberships granted and synced (or found drifted) last time: a
	// change to them since is drift.
	previous := map[string]bool{}
	if c := apimeta.FindStatusCondition(in.Status.Conditions, rolesyncv1.ConditionTeamsSynced); c != nil &&
		(c.Status == metav1.ConditionTrue || c.Reason == rolesyncv1.ReasonDriftDetected) {
		for _, m := range in.Status.Teams {
			previous[m.Team] = true
		}
	}
	var ops []TeamOp
	planned := map[string]bool{}
	for _, g := range in.Grants {
		planned[g.Team] = true
		_, exact := in.Owned(g.Team)
		op := TeamOp{Team: g.Team, Role: g.Role, KeepHigher: !exact}
		if previous[g.Team] {
			op.driftIf, op.DryRun = "added", in.Report
		}
		ops = append(ops, op)
	}
	candidates := slices.Clone(in.Held) // the teams LiteLLM says the user is in, and those rolesync granted
	for _, m := range in.Status.Teams {
		candidates = append(candidates, m.Team)
	}
	for _, team := range candidates {
		if planned[team] {
			continue
		}
		planned[team] = true
		if owned, exact := in.Owned(team); !owned || !exact {
			continue // Additive, or a team the mappings do not own: never removed
		}
		op := TeamOp{Team: team, Remove: true}
		if len(previous) > 0 && !previous[team] {
			op.driftIf, op.DryRun = "removed", in.Report
		}
		ops = append(ops, op)
	}
	return ops
}

// RecordTeamResult adds what one op did to tr: a missing team, or drift
// reported (DryRun) or put back. changed is what the database did or, for a
// DryRun, would do ("added", "role", "removed" or ""); found is false when
// the team does not exist.
func RecordTeamResult(tr *TeamsResult, op TeamOp, changed string, found bool) {
	switch {
	case !found && !op.Remove:
		tr.NotFound = append(tr.NotFound, op.Team)
	case op.driftIf == "" || changed != op.driftIf:
	case op.DryRun:
		tr.Reported = append(tr.Reported, op.Team+" ("+driftText(op)+")")
	default:
		tr.Corrected = append(tr.Corrected, op.Team+" ("+driftText(op)+")")
	}
}

// driftText says what happened behind rolesync's back.
func driftText(op TeamOp) string {
	if op.Remove {
		return "added"
	}
	return "removed"
}
