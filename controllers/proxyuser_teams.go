package controllers

import (
	"context"
	"slices"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
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
}

// MembershipWriter writes membership changes (proxydb.TeamWriter: group
// commits per team, on the leader only).
type MembershipWriter interface {
	Apply(ctx context.Context, team string, op proxydb.MemberOp, keys proxydb.Keys) (proxydb.MemberResult, bool, error)
}

// teamRetry is how soon a user granted a team that does not exist yet is
// looked at again.
const teamRetry = 30 * time.Second

// syncTeams decides the user's teams and keeps LiteLLM's rosters exact for
// them (proxyuser.PlanTeams says which changes; the team writer makes them,
// one transaction per team for many users). A user whose teams were
// checked within the resync period and did not change costs nothing.
func (r *ProxyUserReconciler) syncTeams(ctx context.Context, pu *rolesyncv1.ProxyUser, claims map[string]any, res resolution, sr proxyuser.SyncResult, pf *prefetch) proxyuser.TeamsResult {
	engine, _ := r.Registry.Engine(pu.Namespace)
	var td rolemap.TeamDecision
	in := proxyuser.UserInput(pu, engine, r.GroupsClaim, time.Time{})
	grants := proxyuser.Teams(in, claims, res.Denied, &td)
	tr := proxyuser.TeamsResult{Active: len(td.Owners) > 0 || len(pu.Status.Teams) > 0}
	if !tr.Active {
		r.teamsChecked.Delete(pu.UID)
		return tr
	}
	tr.Grants = grants
	for _, d := range td.Dropped {
		if !slices.Contains(tr.Dropped, d.Team) {
			tr.Dropped = append(tr.Dropped, d.Team)
		}
	}
	store, ok := r.Store.(TeamStore)
	switch {
	case r.Store == nil || !ok || r.Teams == nil:
		tr.NoDatabase = true
		return tr
	case sr.Err != nil || sr.Row == "" || sr.Unmanaged != "":
		tr.Waiting = true
		return tr
	}
	if apimeta.IsStatusConditionTrue(pu.Status.Conditions, rolesyncv1.ConditionTeamsSynced) && slices.Equal(pu.Status.Teams, tr.Grants) && r.teamsCheckedRecently(pu.UID, pf) {
		return tr
	}
	var held []string
	if pf != nil && !pf.failed && pf.found.Found && pf.found.Row.UserID == sr.Row {
		held = pf.found.Teams // read by the sweep with the row
	} else {
		var err error
		if held, err = store.UserTeams(ctx, sr.Row); err != nil {
			tr.Err = err
			return tr
		}
	}
	ops := proxyuser.PlanTeams(proxyuser.TeamPlanInput{Grants: tr.Grants, Owned: td.Owned, Held: held, Status: &pu.Status,
		Report: r.driftPolicy() == DriftReport})
	keys := proxydb.KeysLeave
	if r.KeyRevocation == KeyRevocationBlock {
		keys = proxydb.KeysBlock
	}
	reason := "teams of " + auditReason(res)
	for _, op := range ops {
		out, found, err := r.Teams.Apply(ctx, op.Team, proxydb.MemberOp{RowUserID: sr.Row, Email: pu.Spec.Email, Role: string(op.Role),
			Remove: op.Remove, KeepHigher: op.KeepHigher, DryRun: op.DryRun, Reason: reason, Object: objectName(pu)}, keys)
		if err != nil {
			tr.Err = err
			break
		}
		proxyuser.RecordTeamResult(&tr, op, out.Changed, found)
	}
	if tr.Err == nil && len(tr.NotFound) == 0 && len(tr.Reported) == 0 {
		if r.sweep == nil {
			r.teamsChecked.Store(pu.UID, time.Now())
		}
	} else {
		r.teamsChecked.Delete(pu.UID)
	}
	return tr
}

// teamsCheckedRecently: the user's memberships were confirmed within the
// resync period (a resync then checks them again, as it does the row);
// with the drift sweep, they are checked when the sweep read the row.
func (r *ProxyUserReconciler) teamsCheckedRecently(uid types.UID, pf *prefetch) bool {
	if r.sweep != nil {
		return pf == nil
	}
	at, ok := r.teamsChecked.Load(uid)
	return ok && time.Since(at.(time.Time)) < r.resyncPeriod()*9/10
}
