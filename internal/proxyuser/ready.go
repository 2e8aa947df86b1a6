package proxyuser

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// readyStep is one condition Ready summarizes: the step fails when the
// condition has the status failsWhen.
type readyStep struct {
	condition string
	failsWhen metav1.ConditionStatus
}

// ReadySteps are the conditions Ready summarizes, in the order their
// failures take precedence (the one list, like cluster-api's conditions
// summary): a deletion that cannot complete, then the user's LiteLLM row,
// then its team memberships. Denied is a decision, not a failure (a denied
// user whose row is demoted is Ready with the denial's reason); Drifted's
// failing states show on Synced (DriftDetected, UnmanagedRole), and a
// competing writer that rolesync corrected leaves the user Ready.
var ReadySteps = []readyStep{
	{rolesyncv1.ConditionDeleteBlocked, metav1.ConditionTrue},
	{rolesyncv1.ConditionSynced, metav1.ConditionFalse},
	{rolesyncv1.ConditionTeamsSynced, metav1.ConditionFalse},
}

// SetReady derives Ready from the other conditions: False with the reason
// and message of the first failing step of ReadySteps, else True with the
// decision's reason and message. observedGeneration moves only when Ready
// is True: the whole reconcile of this generation succeeded.
func SetReady(pu *rolesyncv1.ProxyUser, res rolemap.Resolution) {
	st := &pu.Status
	ready := metav1.Condition{Type: rolesyncv1.ConditionReady, Status: metav1.ConditionTrue, Reason: res.Reason, Message: res.Message,
		ObservedGeneration: pu.Generation}
	for _, step := range ReadySteps {
		if c := apimeta.FindStatusCondition(st.Conditions, step.condition); c != nil && c.Status == step.failsWhen {
			ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, c.Reason, c.Message
			break
		}
	}
	apimeta.SetStatusCondition(&st.Conditions, ready)
	if ready.Status == metav1.ConditionTrue {
		st.ObservedGeneration = pu.Generation
	}
}

// SetDeleteBlocked records that deletionPolicy Delete cannot remove the
// user's row because rows of another table reference it (msg names them).
func SetDeleteBlocked(pu *rolesyncv1.ProxyUser, msg string) {
	apimeta.SetStatusCondition(&pu.Status.Conditions, metav1.Condition{Type: rolesyncv1.ConditionDeleteBlocked, Status: metav1.ConditionTrue,
		Reason: rolesyncv1.ReasonDeleteBlocked, Message: rolesyncv1.Truncate(msg+"; remove those rows (or set deletionPolicy Retain) and the deletion completes", rolesyncv1.MaxMessageLength),
		ObservedGeneration: pu.Generation})
	c := apimeta.FindStatusCondition(pu.Status.Conditions, rolesyncv1.ConditionReady)
	var res rolemap.Resolution
	if c != nil {
		res.Reason, res.Message = c.Reason, c.Message
	}
	SetReady(pu, res)
}
