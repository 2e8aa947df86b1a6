package controllers

import (
	"context"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxydb"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// TeamStore is the part of the proxy database team memberships need
// (proxydb.DB implements it).
type TeamStore interface {
	// UserTeams reads the user's teams array (one row).
	UserTeams(ctx context.Context, rowUserID string) ([]string, error)
	// ApplyTeamBatch applies many users' changes to one team in one
	// transaction, reading and writing its roster once.
	ApplyTeamBatch(ctx context.Context, team string, ops []proxydb.MemberOp, keys proxydb.Keys) ([]proxydb.MemberResult, bool, error)
}

// teamRetry is how soon a user granted a team that does not exist yet is
// looked at again.
const teamRetry = 30 * time.Second

// syncTeams decides the user's teams and keeps LiteLLM's rosters exact for
// them: every granted membership added (or its role set; Additive never
// lowers one); with teamSync Exact, the user removed from owned teams no
// rule grants; teams the mappings do not own never touched. A membership
// changed behind rolesync's back in an owned team is drift: put back
// (Enforce) or reported (Report). The rosters are read and written by the
// team batcher (one transaction per team for many users); a user whose
// teams were checked within the resync period and did not change costs
// nothing.
func (r *ProxyUserReconciler) syncTeams(ctx context.Context, pu *rolesyncv1.ProxyUser, claims map[string]any, res resolution, sr proxyuser.SyncResult) proxyuser.TeamsResult {
	engine, _ := r.Registry.Engine(pu.Namespace)
	var td rolemap.TeamDecision
	engine.EvaluateTeamsInto(claims, pu.Spec.Issuer, &td)
	tr := proxyuser.TeamsResult{Active: len(td.Owners) > 0 || len(pu.Status.Teams) > 0}
	if !tr.Active {
		r.teamsChecked.Delete(pu.UID)
		return tr
	}
	tr.Grants = proxyuser.TeamGrants(pu.Namespace, &td, res.Denied)
	for _, d := range td.Dropped {
		if !slices.Contains(tr.Dropped, d.Team) {
			tr.Dropped = append(tr.Dropped, d.Team)
		}
	}
	store, ok := r.Store.(TeamStore)
	switch {
	case r.Store == nil || !ok:
		tr.NoDatabase = true
		return tr
	case sr.Err != nil || sr.Row == "" || sr.Unmanaged != "":
		tr.Waiting = true
		return tr
	}
	synced := conditionTrue(pu.Status.Conditions, rolesyncv1.ConditionTeamsSynced)
	if synced && slices.Equal(pu.Status.Teams, tr.Grants) && r.teamsCheckedRecently(pu.UID) {
		return tr
	}
	previous := map[string]bool{} // granted and synced (or found drifted) by the last reconcile
	if synced || conditionReason(pu.Status.Conditions, rolesyncv1.ConditionTeamsSynced) == rolesyncv1.ReasonDriftDetected {
		for _, m := range pu.Status.Teams {
			previous[m.Team] = true
		}
	}
	held, err := store.UserTeams(ctx, sr.Row)
	if err != nil {
		tr.Err = err
		return tr
	}
	report := r.driftPolicy() == DriftReport
	reason := "teams of " + auditReason(res)
	var ops []proxydb.MemberOp
	var teams []string
	granted := map[string]bool{}
	for _, g := range tr.Grants {
		granted[g.Team] = true
		_, exact := td.Owned(g.Team)
		ops = append(ops, proxydb.MemberOp{RowUserID: sr.Row, Email: pu.Spec.Email, Role: string(g.Role), KeepHigher: !exact,
			DryRun: report && previous[g.Team], Reason: reason, Object: objectName(pu)})
		teams = append(teams, g.Team)
	}
	candidates := slices.Clone(held) // the teams LiteLLM says the user is in, and those rolesync granted
	for _, m := range pu.Status.Teams {
		candidates = append(candidates, m.Team)
	}
	for _, team := range candidates {
		if granted[team] || slices.Contains(teams, team) {
			continue
		}
		if owned, exact := td.Owned(team); !owned || !exact {
			continue // Additive, or a team the mappings do not own: never removed
		}
		ops = append(ops, proxydb.MemberOp{RowUserID: sr.Row, Remove: true,
			DryRun: report && len(previous) > 0 && !previous[team], Reason: reason, Object: objectName(pu)})
		teams = append(teams, team)
	}
	keys := proxydb.KeysLeave
	if r.KeyRevocation == KeyRevocationBlock {
		keys = proxydb.KeysBlock
	}
	r.batcherOnce.Do(func() { r.batcher = newTeamBatcher(store) })
	for i, op := range ops {
		out, found, err := r.batcher.apply(ctx, teams[i], op, keys)
		switch {
		case err != nil:
			tr.Err = err
			return tr
		case !found && !op.Remove:
			tr.NotFound = append(tr.NotFound, teams[i])
			continue
		case out.Changed == "":
			continue
		}
		// Drift: a synced membership gone, or one added behind rolesync's back.
		drift := ""
		switch {
		case !op.Remove && previous[teams[i]] && out.Changed == "added":
			drift = teams[i] + " (removed)"
		case op.Remove && len(previous) > 0 && !previous[teams[i]]:
			drift = teams[i] + " (added)"
		}
		switch {
		case drift != "" && op.DryRun:
			tr.Reported = append(tr.Reported, drift)
		case drift != "":
			tr.Corrected = append(tr.Corrected, drift)
		}
	}
	if tr.Err == nil && len(tr.NotFound) == 0 && len(tr.Reported) == 0 {
		r.teamsChecked.Store(pu.UID, time.Now())
	} else {
		r.teamsChecked.Delete(pu.UID)
	}
	return tr
}

// teamsCheckedRecently: the user's memberships were confirmed within the
// resync period (a resync then checks them again, as it does the row).
func (r *ProxyUserReconciler) teamsCheckedRecently(uid types.UID) bool {
	at, ok := r.teamsChecked.Load(uid)
	return ok && time.Since(at.(time.Time)) < r.resyncPeriod()*9/10
}
