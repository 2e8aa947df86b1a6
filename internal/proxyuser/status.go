package proxyuser

import (
	"fmt"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// The pure status setters of a ProxyUser: the ProxyUser controller (the one
// writer of every ProxyUser condition) computes status with them, and they
// are table-tested with no apiserver or database.

// DriftState is what a drift check found.
type DriftState int

// Drift states.
const (
	DriftNone      DriftState = iota // not checked, or the row agreed
	DriftCorrected                   // the row differed and was rewritten (Enforce)
	DriftReported                    // the row differs and was left (Report)
)

// SyncResult is what the database step did.
type SyncResult struct {
	NoDatabase bool
	Err        error
	// Wrote is true when a statement that may change the row ran and
	// succeeded: syncedRole and lastSyncTime move.
	Wrote bool
	Drift DriftState
	// RowRole is the role found in the row by a drift check ("" when absent).
	RowRole string
	// Row is the user_id of the row the user is bound to ("" when none).
	Row string
	// Inactive: the row is deactivated in LiteLLM (metadata.scim_active
	// false), as the write left it or the read found it.
	Inactive bool
	// Waiting: the user came through a login and LiteLLM has not created
	// the row yet.
	Waiting bool
	// Ambiguous: several rows share the user's email; none was written.
	Ambiguous error
	// Unmanaged is the role rolesync does not manage found in the row (left alone).
	Unmanaged string
	// CacheTTL is LiteLLM's user cache TTL: a write is in force in LiteLLM
	// at most this long after it (status.inForceBy).
	CacheTTL time.Duration
	// Competing: the corrected drift came soon after the previous correction.
	Competing bool
	// Conflict names (namespace/name) the older ProxyUser with the same
	// userID that writes the row; this one is not synced.
	Conflict string
}

// SetStatus writes one reconcile's outcome into the status: the decision
// (role, source, Denied), the database step (Synced, Drifted, syncedRole),
// the team step (status.teams, TeamsSynced), then Ready as their summary
// (SetReady). It is pure: table-tested without an apiserver or a database.
func SetStatus(pu *rolesyncv1.ProxyUser, res rolemap.Resolution, sr SyncResult, tr TeamsResult, now metav1.Time) {
	setSyncStatus(pu, res, sr, now)
	SetTeamsStatus(pu, tr)
	SetReady(pu, res)
}

// setSyncStatus writes the decision and the database step.
func setSyncStatus(pu *rolesyncv1.ProxyUser, res rolemap.Resolution, sr SyncResult, now metav1.Time) {
	st := &pu.Status
	gen := pu.Generation
	st.Role = res.Role
	st.Source = res.Source
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: rolesyncv1.Truncate(msg, rolesyncv1.MaxMessageLength), ObservedGeneration: gen})
	}

	if res.Denied {
		set(rolesyncv1.ConditionDenied, metav1.ConditionTrue, res.Reason, res.Message)
	} else {
		set(rolesyncv1.ConditionDenied, metav1.ConditionFalse, rolesyncv1.ReasonAllowed, res.Message)
	}

	want := res.RowRole()
	switch {
	case sr.NoDatabase:
		st.Deactivated = false
		set(rolesyncv1.ConditionSynced, metav1.ConditionUnknown, rolesyncv1.ReasonNoDatabase, "the operator runs without --database-url: roles are resolved into status only")
		set(rolesyncv1.ConditionDrifted, metav1.ConditionUnknown, rolesyncv1.ReasonNoDatabase, "no database to compare with")
	case sr.Err != nil:
		set(rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonSyncFailed, sr.Err.Error()+"; retrying with backoff")
	case sr.Conflict != "":
		st.DatabaseUserID, st.Deactivated = "", false
		set(rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonRowConflict, fmt.Sprintf(
			"ProxyUser %s, created earlier, has the same userID and writes its database row (LiteLLM keys rows by user_id alone); this one is not synced until that one is deleted", sr.Conflict))
	case sr.Ambiguous != nil:
		st.DatabaseUserID, st.Deactivated = "", false
		set(rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonAmbiguousUser, sr.Ambiguous.Error()+
			": rolesync writes none of them; give the right row sso_user_id = the user's id, or remove the others")
	case sr.Waiting:
		st.Deactivated = false
		set(rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonWaitingForRow, fmt.Sprintf(
			"LiteLLM has no row for %s yet: LiteLLM creates it at the user's login (right after its login hook), then rolesync sets its role to %s", pu.Spec.UserID, want))
	case sr.Unmanaged != "":
		st.DatabaseUserID, st.Deactivated = sr.Row, sr.Inactive
		set(rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonUnmanagedRole, fmt.Sprintf("row %s holds %s, which rolesync does not manage: not written", sr.Row, sr.Unmanaged))
		set(rolesyncv1.ConditionDrifted, metav1.ConditionTrue, rolesyncv1.ReasonUnmanagedRole, fmt.Sprintf(
			"row %s holds %s (set by someone else), not %s; rolesync never overwrites org_admin, team or customer", sr.Row, sr.Unmanaged, want))
	case sr.Drift == DriftReported:
		set(rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonDriftDetected, fmt.Sprintf("the database holds %s, not %s", RowText(sr.RowRole), want))
		set(rolesyncv1.ConditionDrifted, metav1.ConditionTrue, rolesyncv1.ReasonDriftDetected, fmt.Sprintf("the database holds %s, not %s; --drift-policy=Report leaves it", RowText(sr.RowRole), want))
	default:
		if sr.Wrote || st.SyncedRole != want {
			st.SyncedRole = want
			st.LastSyncTime = &now
			inForce := metav1.NewTime(now.Add(sr.CacheTTL))
			st.InForceBy = &inForce
		}
		st.DatabaseUserID, st.Deactivated = sr.Row, sr.Inactive && sr.Row != ""
		msg := "the database holds " + string(want)
		if res.Denied {
			msg = "denied: the database row, if any, holds " + string(want)
			if st.Deactivated {
				msg += " and is deactivated in LiteLLM (metadata.scim_active false: every key of the user is refused)"
			}
		}
		set(rolesyncv1.ConditionSynced, metav1.ConditionTrue, rolesyncv1.ReasonSynced, msg)
		if sr.Drift == DriftCorrected && sr.Competing {
			set(rolesyncv1.ConditionDrifted, metav1.ConditionTrue, rolesyncv1.ReasonCompetingWriter, fmt.Sprintf(
				"the database held %s again soon after a correction; rewrote %s. Another writer sets user_role: turn LiteLLM's own role mapping off (docs/operations.md)", RowText(sr.RowRole), want))
		} else if sr.Drift == DriftCorrected {
			set(rolesyncv1.ConditionDrifted, metav1.ConditionFalse, rolesyncv1.ReasonDriftCorrected, fmt.Sprintf("the database held %s; rewrote %s", RowText(sr.RowRole), want))
		} else if c := apimeta.FindStatusCondition(st.Conditions, rolesyncv1.ConditionDrifted); c == nil || c.Status != metav1.ConditionFalse {
			set(rolesyncv1.ConditionDrifted, metav1.ConditionFalse, rolesyncv1.ReasonNoDrift, "the database agrees with status")
		}
	}

}

// SetDuplicateStatus marks a ProxyUser that another, older one with the same
// userID and issuer already owns. It is never resolved nor synced.
func SetDuplicateStatus(pu *rolesyncv1.ProxyUser, owner string) {
	st := &pu.Status
	st.Role, st.Source, st.SyncedRole, st.LastSyncTime, st.InForceBy = "", nil, "", nil, nil
	msg := fmt.Sprintf("ProxyUser %s, created earlier, has the same userID and issuer; this one is ignored until it is deleted", owner)
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: rolesyncv1.ConditionSynced, Status: metav1.ConditionFalse,
		Reason: rolesyncv1.ReasonDuplicateUser, Message: msg, ObservedGeneration: pu.Generation})
	apimeta.RemoveStatusCondition(&st.Conditions, rolesyncv1.ConditionDenied)
	apimeta.RemoveStatusCondition(&st.Conditions, rolesyncv1.ConditionDrifted)
	SetReady(pu, rolemap.Resolution{})
	st.ObservedGeneration = pu.Generation // a duplicate is a final state: nothing more to do for this generation
}

// RowText names a row role for messages ("no row" when there is none).
func RowText(role string) string {
	if role == "" {
		return "no row"
	}
	return role
}
