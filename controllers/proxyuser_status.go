package controllers

import (
	"fmt"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// resolution is the role a ProxyUser should hold and why.
type resolution = rolemap.Resolution

// resolve decides a user's role: roleOverride first, then the engine's
// decision on the stored claims (the engine enforces each mapping's maxRole).
func resolve(pu *rolesyncv1.ProxyUser, claims map[string]any, engine *rolemap.Engine) resolution {
	if o := pu.Spec.RoleOverride; o != nil && *o != "" {
		return rolemap.Resolve(pu.Namespace, o, nil)
	}
	d := engine.Evaluate(claims, pu.Spec.Issuer)
	return rolemap.Resolve(pu.Namespace, nil, &d)
}

// driftState is what a drift check found.
type driftState int

const (
	driftNone      driftState = iota // not checked, or the row agreed
	driftCorrected                   // the row differed and was rewritten (Enforce)
	driftReported                    // the row differs and was left (Report)
)

// syncResult is what the database step did.
type syncResult struct {
	NoDatabase bool
	Err        error
	// Wrote is true when a statement that may change the row ran and
	// succeeded: syncedRole and lastSyncTime move.
	Wrote bool
	Drift driftState
	// RowRole is the role found in the row by a drift check ("" when absent).
	RowRole string
}

// setProxyUserStatus writes the resolution and the sync result into the
// status. It is pure: table-tested without an apiserver or a database.
func setProxyUserStatus(pu *rolesyncv1.ProxyUser, res resolution, sr syncResult, now metav1.Time) {
	st := &pu.Status
	gen := pu.Generation
	st.Role = res.Role
	st.Source = res.Source
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: gen})
	}

	if res.Denied {
		set(rolesyncv1.ConditionDenied, metav1.ConditionTrue, res.Reason, res.Message)
	} else {
		set(rolesyncv1.ConditionDenied, metav1.ConditionFalse, rolesyncv1.ReasonAllowed, res.Message)
	}

	want := res.RowRole()
	switch {
	case sr.NoDatabase:
		set(rolesyncv1.ConditionSynced, metav1.ConditionUnknown, rolesyncv1.ReasonNoDatabase, "the operator runs without --database-url: roles are resolved into status only")
		set(rolesyncv1.ConditionDrifted, metav1.ConditionUnknown, rolesyncv1.ReasonNoDatabase, "no database to compare with")
	case sr.Err != nil:
		set(rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonSyncFailed, sr.Err.Error()+"; retrying with backoff")
	case sr.Drift == driftReported:
		set(rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonDriftDetected, fmt.Sprintf("the database holds %s, not %s", rowText(sr.RowRole), want))
		set(rolesyncv1.ConditionDrifted, metav1.ConditionTrue, rolesyncv1.ReasonDriftDetected, fmt.Sprintf("the database holds %s, not %s; --drift-policy=Report leaves it", rowText(sr.RowRole), want))
	default:
		if sr.Wrote || st.SyncedRole != want {
			st.SyncedRole = want
			st.LastSyncTime = &now
		}
		msg := "the database holds " + string(want)
		if res.Denied {
			msg = "denied: the database row, if any, holds " + string(want)
		}
		set(rolesyncv1.ConditionSynced, metav1.ConditionTrue, rolesyncv1.ReasonSynced, msg)
		if sr.Drift == driftCorrected {
			set(rolesyncv1.ConditionDrifted, metav1.ConditionFalse, rolesyncv1.ReasonDriftCorrected, fmt.Sprintf("the database held %s; rewrote %s", rowText(sr.RowRole), want))
		} else if c := apimeta.FindStatusCondition(st.Conditions, rolesyncv1.ConditionDrifted); c == nil || c.Status != metav1.ConditionFalse {
			set(rolesyncv1.ConditionDrifted, metav1.ConditionFalse, rolesyncv1.ReasonNoDrift, "the database agrees with status")
		}
	}

	switch {
	case sr.Err != nil:
		set(rolesyncv1.ConditionReady, metav1.ConditionFalse, rolesyncv1.ReasonSyncFailed, sr.Err.Error())
	case sr.Drift == driftReported:
		set(rolesyncv1.ConditionReady, metav1.ConditionFalse, rolesyncv1.ReasonDriftDetected, "the database role differs from status.role")
	default:
		set(rolesyncv1.ConditionReady, metav1.ConditionTrue, res.Reason, res.Message)
		st.ObservedGeneration = gen // only a complete reconcile marks the generation done
	}
}

// setDuplicateStatus marks a ProxyUser that another, older one with the same
// userID and issuer already owns. It is never resolved nor synced.
func setDuplicateStatus(pu *rolesyncv1.ProxyUser, owner string) {
	st := &pu.Status
	st.Role, st.Source, st.SyncedRole, st.LastSyncTime = "", nil, "", nil
	msg := fmt.Sprintf("ProxyUser %s, created earlier, has the same userID and issuer; this one is ignored until it is deleted", owner)
	for _, t := range []string{rolesyncv1.ConditionReady, rolesyncv1.ConditionSynced} {
		apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: metav1.ConditionFalse, Reason: rolesyncv1.ReasonDuplicateUser, Message: msg, ObservedGeneration: pu.Generation})
	}
	apimeta.RemoveStatusCondition(&st.Conditions, rolesyncv1.ConditionDenied)
	apimeta.RemoveStatusCondition(&st.Conditions, rolesyncv1.ConditionDrifted)
	st.ObservedGeneration = pu.Generation
}

func rowText(role string) string {
	if role == "" {
		return "no row"
	}
	return role
}
