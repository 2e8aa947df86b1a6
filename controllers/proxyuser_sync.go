package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxydb"
	"github.com/rolesync/rolesync/internal/proxyuser"
)

var competingWrites = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "rolesync_competing_writes_total",
	Help: "Rows that drifted again within three resync periods of a correction: another writer (LiteLLM's own role mapping) is setting user_role.",
})

func init() {
	metrics.Registry.MustRegister(competingWrites)
}

// competingWindow is how many resync periods after a correction another
// drift counts as a competing writer rather than a one-off edit.
const competingWindow = 3

// sync makes the row LiteLLM uses for the user hold the resolution's role,
// with as few statements as possible:
//   - none when status says the bound row holds it for this generation and
//     it was confirmed within the resync period;
//   - a drift check (Find: one read, re-binding the row in LiteLLM's lookup
//     order) once per resync period, and a write only if the row differs;
//   - one guarded write (Apply, with its audit row) when the role changed
//     and the row is bound; a Find first when it is not (or is gone).
//
// It never creates a row: LiteLLM creates it at the user's first login
// (right after its login hook) or when an admin adds the user; rolesync
// waits for it (WaitingForRow).
//
// With the drift sweep (a store that reads many rows at once), the drift
// check of an up-to-date user happens only when the sweep has read its
// row (pf), once per resync period at the user's slot; without it, once
// per resync period after the last check this process made.
func (r *ProxyUserReconciler) sync(ctx context.Context, pu *rolesyncv1.ProxyUser, res resolution, pf *prefetch) proxyuser.SyncResult {
	if r.Store == nil {
		return proxyuser.SyncResult{NoDatabase: true}
	}
	want := res.RowRole()
	st := &pu.Status
	bound := st.DatabaseUserID
	// Status says the bound row was written with this role for this spec:
	// only a drift check may be due. (A failed write leaves syncedRole as it was.)
	upToDate := bound != "" && st.SyncedRole == want && st.ObservedGeneration == pu.Generation
	if upToDate {
		if r.sweep != nil && pf == nil {
			return proxyuser.SyncResult{Row: bound, Inactive: pu.Status.Deactivated} // the sweep checks it at its slot
		}
		if m, ok := r.checked.Load(pu.UID); r.sweep == nil && ok && m.(checkMark).role == want && time.Since(m.(checkMark).at) < r.resyncPeriod()*9/10 {
			return proxyuser.SyncResult{Row: bound, Inactive: pu.Status.Deactivated}
		}
	} else if bound != "" {
		// The role changed: write the bound row directly (one round trip).
		sr, gone := r.apply(ctx, pu, res, bound, false, "")
		if !gone {
			return sr
		}
		pf = nil // read before the row went
	}

	row, found, err := r.find(ctx, pu, pf)
	var amb *proxydb.AmbiguousError
	switch {
	case errors.As(err, &amb):
		r.checked.Delete(pu.UID)
		return proxyuser.SyncResult{Ambiguous: amb}
	case err != nil:
		return proxyuser.SyncResult{Err: err}
	case !found && res.Denied:
		r.markChecked(pu.UID, want)
		return proxyuser.SyncResult{} // nothing to demote, and never a row for a denied user
	case !found:
		// LiteLLM is the only creator of user rows: its sign-up (or an
		// admin's /user/new) applies its own defaults
		// (default_internal_user_params), which a row created before the
		// first login would skip. The user waits; the login handler answers
		// the role for LiteLLM's insert.
		return proxyuser.SyncResult{Waiting: true}
	case !proxydb.Managed(row.Role):
		r.checked.Delete(pu.UID)
		return proxyuser.SyncResult{Row: row.UserID, Unmanaged: row.Role, Inactive: row.Inactive}
	}
	if upToDate && row.UserID == bound && rolesyncv1.Role(row.Role) == want && !r.revokes(res) {
		r.markChecked(pu.UID, want)
		return proxyuser.SyncResult{Row: row.UserID, Inactive: row.Inactive}
	}
	drifted := upToDate && rolesyncv1.Role(row.Role) != want
	if drifted && r.driftPolicy() == DriftReport {
		r.checked.Delete(pu.UID)
		return proxyuser.SyncResult{Row: row.UserID, Drift: proxyuser.DriftReported, RowRole: row.Role}
	}
	sr, gone := r.apply(ctx, pu, res, row.UserID, drifted, row.Role)
	if gone {
		return proxyuser.SyncResult{Err: fmt.Errorf("row %s disappeared while writing it; looking again", row.UserID)}
	}
	return sr
}

// apply writes the role (and key state) to the row rowUserID. gone is true
// when the row no longer exists.
func (r *ProxyUserReconciler) apply(ctx context.Context, pu *rolesyncv1.ProxyUser, res resolution, rowUserID string, drifted bool, rowRole string) (proxyuser.SyncResult, bool) {
	o, err := r.Store.Apply(ctx, proxydb.Change{RowUserID: rowUserID, Role: string(res.RowRole()), Keys: r.keys(res),
		Activation: r.activation(res), Reason: auditReason(res), Object: objectName(pu), Deprovisioned: deprovisioned(res)})
	if err != nil {
		r.checked.Delete(pu.UID)
		return proxyuser.SyncResult{Err: err}, false
	}
	if !o.Found {
		return proxyuser.SyncResult{}, true
	}
	if !proxydb.Managed(o.Before) {
		r.checked.Delete(pu.UID)
		return proxyuser.SyncResult{Row: rowUserID, Unmanaged: o.Before, Inactive: o.Inactive}, false
	}
	r.markChecked(pu.UID, res.RowRole())
	sr := proxyuser.SyncResult{Wrote: true, Row: rowUserID, Inactive: o.Inactive}
	if drifted && o.RoleChanged {
		sr.Drift, sr.RowRole = proxyuser.DriftCorrected, rowRole
		sr.Competing = r.noteCorrection(pu.UID)
	}
	return sr, false
}

// noteCorrection records a drift correction and reports whether the
// previous one was recent: then another writer keeps setting the row.
func (r *ProxyUserReconciler) noteCorrection(uid types.UID) bool {
	now := time.Now()
	prev, ok := r.corrected.Swap(uid, now)
	if ok && now.Sub(prev.(time.Time)) < competingWindow*r.resyncPeriod() {
		competingWrites.Inc()
		return true
	}
	return false
}

// keys says what a write does to the user's virtual keys: a denied user's
// keys are blocked when revocation is on; a granted user gets back the keys
// rolesync blocked (even when revocation was turned off since).
func (r *ProxyUserReconciler) keys(res resolution) proxydb.Keys {
	switch {
	case !res.Denied:
		return proxydb.KeysUnblock
	case r.KeyRevocation == KeyRevocationBlock || deprovisioned(res): // the person left: whatever --key-revocation says
		return proxydb.KeysBlock
	}
	// Denied, revocation off: a deprovisioning's block (the directory has
	// since reactivated the user) is lifted, nothing else changes.
	return proxydb.KeysLiftDeprovisioned
}

// activation says what a write does to the user's LiteLLM activation: a
// denied user is deactivated (LiteLLM's key authentication then refuses
// every key of the user, whatever door they came through: the UI, the CLI
// login, an existing key); a granted user gets back what rolesync took
// away, never a deactivation LiteLLM's SCIM made (even with
// --deactivate-denied=false, so turning it off never strands a user).
func (r *ProxyUserReconciler) activation(res resolution) proxydb.Activation {
	switch {
	case !res.Denied:
		return proxydb.ActivationRestore
	case r.KeepDeniedActive && !deprovisioned(res):
		return proxydb.ActivationLeave
	}
	return proxydb.ActivationDeactivate
}

// deprovisioned: the directory deprovisioned the user (SCIM active=false
// or deleted): keys blocked and the user deactivated whatever the flags.
func deprovisioned(res resolution) bool {
	return res.Denied && res.Reason == rolesyncv1.ReasonDeprovisioned
}

// revokes reports whether a drift check must write even when the role
// agrees: a denied user is re-deactivated (and a key added since blocked)
// by the same guarded statement, which writes nothing when all holds.
func (r *ProxyUserReconciler) revokes(res resolution) bool {
	return r.keys(res) != proxydb.KeysUnblock || r.activation(res) == proxydb.ActivationDeactivate
}

// rowWait is how soon a user waiting for LiteLLM's row is looked at again:
// soon after a login (LiteLLM inserts the row right after its hook), then
// once per resync period.
func (r *ProxyUserReconciler) rowWait(pu *rolesyncv1.ProxyUser) time.Duration {
	if l := pu.Spec.LastLoginTime; l != nil && time.Since(l.Time) < 5*time.Minute {
		return 2 * time.Second
	}
	return r.resyncPeriod()
}

// applyDeletionPolicy downgrades (blocking keys when revocation is on) or
// deletes the user's row. A blocked delete sets DeleteBlocked and emits an
// Event naming the table; the error makes the finalizer retry with backoff.
func (r *ProxyUserReconciler) applyDeletionPolicy(ctx context.Context, pu *rolesyncv1.ProxyUser, policy rolesyncv1.DeletionPolicy) error {
	row, found, err := r.Store.Find(ctx, pu.Spec.UserID, pu.Spec.Email)
	if err == nil && found && policy == rolesyncv1.DeletionPolicyDelete {
		err = r.Store.Delete(ctx, row.UserID, "deletionPolicy Delete", objectName(pu))
	} else if err == nil && found {
		keys := proxydb.KeysLeave
		if r.KeyRevocation == KeyRevocationBlock {
			keys = proxydb.KeysBlock
		}
		_, err = r.Store.Apply(ctx, proxydb.Change{RowUserID: row.UserID, Role: string(rolesyncv1.DefaultSSORole), Keys: keys,
			Activation: proxydb.ActivationLeave, Reason: "deletionPolicy Downgrade", Object: objectName(pu)})
	}
	var blocked *proxydb.DeleteBlockedError
	if errors.As(err, &blocked) {
		r.eventf(pu, "Warning", rolesyncv1.ReasonDeleteBlocked, "Delete",
			"Could not delete row %s: %v; the finalizer stays and it is retried", row.UserID, blocked)
		if perr := r.setDeleteBlocked(ctx, pu, blocked.Error()); perr != nil {
			err = errors.Join(err, perr)
		}
		return fmt.Errorf("apply deletion policy %s to %s/%s: %w", policy, pu.Namespace, pu.Name, err)
	}
	var amb *proxydb.AmbiguousError
	if errors.As(err, &amb) {
		// Several rows could be the user's: deleting or demoting one of them
		// could hit someone else. Release the object, leave the rows.
		r.eventf(pu, "Warning", rolesyncv1.ReasonAmbiguousUser, "Delete", "Deletion policy %s not applied: %v", policy, amb)
		return nil
	}
	if err != nil {
		r.eventf(pu, "Warning", rolesyncv1.ReasonDeleteFailed, "Delete",
			"Could not apply deletionPolicy %s: %v; the finalizer stays and it is retried", policy, err)
		return fmt.Errorf("apply deletion policy %s to %s/%s: %w", policy, pu.Namespace, pu.Name, err)
	}
	if found {
		log.FromContext(ctx).Info("Applied deletion policy to proxy database", "policy", policy, "userID", pu.Spec.UserID, "row", row.UserID)
	}
	return nil
}

// setDeleteBlocked records DeleteBlocked (and Ready, through the pure
// setters) on a user being deleted; an unchanged status is not written.
func (r *ProxyUserReconciler) setDeleteBlocked(ctx context.Context, pu *rolesyncv1.ProxyUser, msg string) error {
	base := pu.DeepCopy()
	proxyuser.SetDeleteBlocked(pu, msg)
	if equality.Semantic.DeepEqual(base.Status, pu.Status) {
		return nil
	}
	if err := r.writeStatus(ctx, base, pu); err != nil {
		return fmt.Errorf("patch proxy user status %s/%s: %w", pu.Namespace, pu.Name, err)
	}
	return nil
}

// markChecked records a confirmed row; with the drift sweep nothing is
// kept per user (the sweep's slots say when each user is checked).
func (r *ProxyUserReconciler) markChecked(uid types.UID, role rolesyncv1.Role) {
	if r.sweep == nil {
		r.checked.Store(uid, checkMark{role: role, at: time.Now()})
	}
}

// find reads the user's row: the sweep's read when there is one, else Find.
func (r *ProxyUserReconciler) find(ctx context.Context, pu *rolesyncv1.ProxyUser, pf *prefetch) (proxydb.Row, bool, error) {
	if pf != nil && !pf.failed {
		return pf.found.Row, pf.found.Found, pf.found.Err
	}
	return r.Store.Find(ctx, pu.Spec.UserID, pu.Spec.Email)
}

// auditReason is the decision's source as LiteLLM's audit log records it.
func auditReason(res resolution) string {
	if res.Denied {
		return "denied: " + res.Message
	}
	if res.Source != nil {
		return res.Source.Description
	}
	return res.Message
}

func objectName(pu *rolesyncv1.ProxyUser) string { return pu.Namespace + "/" + pu.Name }
