package controllers

import (
	"context"
	"slices"
	"time"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxydb"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// TeamStore is the part of the proxy database team memberships need
// (proxydb.DB implements it).
type TeamStore interface {
	Memberships(ctx context.Context, rowUserID string) (map[string]string, error)
	ApplyTeams(ctx context.Context, rowUserID, email string, ops []proxydb.TeamOp, keys proxydb.Keys, reason, object string) (proxydb.TeamResult, error)
}

// teamRetry is how soon a user granted a team that does not exist yet is
// looked at again.
const teamRetry = 30 * time.Second

// syncTeams decides the user's teams and keeps LiteLLM's rosters exact for
// them: every granted membership added (or its role set); with teamSync
// Exact, memberships of owned teams that no rule grants removed; teams the
// mappings do not own never touched. A membership changed behind
// rolesync's back in an owned team is drift: put back (Enforce) or reported.
// One read of the user's memberships per reconcile; writes only for changes.
func (r *ProxyUserReconciler) syncTeams(ctx context.Context, pu *rolesyncv1.ProxyUser, res resolution, sr proxyuser.SyncResult) proxyuser.TeamsResult {
	engine, _ := r.Registry.Engine(pu.Namespace)
	var td rolemap.TeamDecision
	engine.EvaluateTeamsInto(proxyuser.StoredClaims(pu), pu.Spec.Issuer, &td)
	tr := proxyuser.TeamsResult{Active: len(td.Owners) > 0 || len(pu.Status.Teams) > 0}
	if !tr.Active {
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
	current, err := store.Memberships(ctx, sr.Row)
	if err != nil {
		tr.Err = err
		return tr
	}
	previous := map[string]bool{} // granted and synced by the last reconcile
	if conditionTrue(pu.Status.Conditions, rolesyncv1.ConditionTeamsSynced) {
		for _, m := range pu.Status.Teams {
			previous[m.Team] = true
		}
	}
	report := r.driftPolicy() == DriftReport
	var ops []proxydb.TeamOp
	granted := map[string]bool{}
	for _, g := range tr.Grants {
		granted[g.Team] = true
		cur, member := current[g.Team]
		_, exact := td.Owned(g.Team)
		switch {
		case member && (cur == string(g.Role) || (!exact && rolesyncv1.TeamRole(cur).Rank() > g.Role.Rank())):
			continue // held (Additive never lowers a role an admin raised)
		case !member && previous[g.Team] && hadRole(pu, g.Team, g.Role):
			// Granted and synced before, gone now: removed behind rolesync's back.
			if report {
				tr.Reported = append(tr.Reported, g.Team+" (removed)")
				continue
			}
			tr.Corrected = append(tr.Corrected, g.Team+" (removed)")
		}
		ops = append(ops, proxydb.TeamOp{Team: g.Team, Role: string(g.Role)})
	}
	for team := range current {
		if granted[team] {
			continue
		}
		if owned, exact := td.Owned(team); !owned || !exact {
			continue // Additive, or a team the mappings do not own: never removed
		}
		if !previous[team] && len(previous) > 0 && report {
			tr.Reported = append(tr.Reported, team+" (added)")
			continue
		}
		ops = append(ops, proxydb.TeamOp{Team: team, Remove: true})
	}
	if len(ops) == 0 {
		return tr
	}
	slices.SortFunc(ops, func(a, b proxydb.TeamOp) int { // one lock order for every writer
		switch {
		case a.Team < b.Team:
			return -1
		case a.Team > b.Team:
			return 1
		}
		return 0
	})
	keys := proxydb.KeysLeave
	if r.KeyRevocation == KeyRevocationBlock {
		keys = proxydb.KeysBlock
	}
	reason := "teams of " + auditReason(res)
	if bs, ok := r.Store.(TeamBatchStore); ok {
		// Group-committed per team with the other workers' changes.
		r.batcherOnce.Do(func() { r.batcher = newTeamBatcher(bs) })
		for _, op := range ops {
			_, found, err := r.batcher.apply(ctx, op.Team, proxydb.MemberOp{RowUserID: sr.Row, Email: pu.Spec.Email, Role: op.Role,
				Remove: op.Remove, Reason: reason, Object: objectName(pu)}, keys)
			if err != nil {
				tr.Err = err
				return tr
			}
			if !found {
				tr.NotFound = append(tr.NotFound, op.Team)
			}
		}
		return tr
	}
	out, err := store.ApplyTeams(ctx, sr.Row, pu.Spec.Email, ops, keys, reason, objectName(pu))
	if err != nil {
		tr.Err = err
		return tr
	}
	tr.NotFound = out.NotFound
	return tr
}

// hadRole reports whether status listed team with role (so the membership
// was synced by an earlier reconcile).
func hadRole(pu *rolesyncv1.ProxyUser, team string, role rolesyncv1.TeamRole) bool {
	for _, m := range pu.Status.Teams {
		if m.Team == team {
			return m.Role == role
		}
	}
	return false
}
