package controllers

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// statusBefore is a status with every kind of field set, and statusAfter
// one a reconcile could make of it: a field changed, fields cleared, a
// list replaced.
func statusBefore() rolesyncv1.ProxyUserStatus {
	at := metav1.NewTime(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	return rolesyncv1.ProxyUserStatus{
		Role:           rolesyncv1.RoleInternalUser,
		Source:         &rolesyncv1.RoleSource{Type: rolesyncv1.SourceRoleMapping, RoleMapping: "keycloak", Rule: ptr.To[int32](2), Claim: "groups", Value: "team-a"},
		SyncedRole:     rolesyncv1.RoleInternalUser,
		DatabaseUserID: "u1",
		LastSyncTime:   &at,
		InForceBy:      &at,
		Teams:          []rolesyncv1.TeamMembership{{Team: "a", Role: rolesyncv1.TeamRoleUser}, {Team: "b", Role: rolesyncv1.TeamRoleAdmin}},
		Conditions: []metav1.Condition{
			{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Synced", Message: "ok", LastTransitionTime: at},
			{Type: "Synced", Status: metav1.ConditionTrue, Reason: "Synced", Message: "ok", LastTransitionTime: at},
		},
	}
}

func statusAfter() rolesyncv1.ProxyUserStatus {
	st := statusBefore()
	later := metav1.NewTime(st.LastSyncTime.Add(time.Minute))
	st.Role = rolesyncv1.RoleProxyAdminViewer
	st.Source.Rule = nil // cleared: must become null in the patch
	st.InForceBy = nil
	st.LastSyncTime = &later
	st.Teams = st.Teams[1:]
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: "Synced", Status: metav1.ConditionFalse, Reason: "SyncFailed", Message: "down", LastTransitionTime: later})
	return st
}

// TestStatusPatchTakesTheStoredStatusToTheNewOne: applied as a JSON patch
// to the object as stored, the status patch gives exactly the new status
// (cleared fields removed, lists replaced), leaves the spec alone and
// sets nothing but the read's resourceVersion in metadata.
func TestStatusPatchTakesTheStoredStatusToTheNewOne(t *testing.T) {
	base := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "u1", ResourceVersion: "41"}}
	base.Spec.UserID, base.Spec.Email = "u1", "u1@example.com"
	base.Status = statusBefore()
	pu := base.DeepCopy()
	pu.Status = statusAfter()

	patch, err := statusPatch(base, pu)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := json.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := ops.Apply(stored)
	if err != nil {
		t.Fatal(err)
	}
	got := &rolesyncv1.ProxyUser{}
	if err := json.Unmarshal(merged, got); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(got.Status, pu.Status) {
		t.Fatalf("patched status = %+v\nwant %+v\npatch %s", got.Status, pu.Status, patch)
	}
	if !equality.Semantic.DeepEqual(got.Spec, base.Spec) {
		t.Fatalf("the patch changed the spec: %s", patch)
	}
	if got.ResourceVersion != "41" || !equality.Semantic.DeepEqual(got.ObjectMeta, base.ObjectMeta) {
		t.Fatalf("patched metadata = %+v, want %+v", got.ObjectMeta, base.ObjectMeta)
	}
	for _, op := range ops {
		if path, _ := op.Path(); path != "/metadata/resourceVersion" && path != "/status" {
			t.Fatalf("patch %s writes %s", patch, path)
		}
	}
}

// TestWriteStatusStoresItAndRefusesAStaleRead: on the real apiserver the
// status write stores the new status, moves the object's resourceVersion
// to the written one, and a write computed from an older read is refused
// with a conflict and changes nothing.
func TestWriteStatusStoresItAndRefusesAStaleRead(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	ns := newNamespace(t)
	r := &ProxyUserReconciler{Client: k8sClient}
	pu := newUser(ns, "w", keycloakClaims("team-d"), true)
	if err := k8sClient.Create(ctx, pu); err != nil {
		t.Fatal(err)
	}
	stale := pu.DeepCopy()

	base := pu.DeepCopy()
	pu.Status = statusBefore()
	if err := r.writeStatus(ctx, base, pu); err != nil {
		t.Fatal(err)
	}
	stored := &rolesyncv1.ProxyUser{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pu), stored); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(stored.Status, pu.Status) {
		t.Fatalf("stored status = %+v, want %+v", stored.Status, pu.Status)
	}
	if pu.ResourceVersion == base.ResourceVersion || pu.ResourceVersion != stored.ResourceVersion {
		t.Fatalf("resourceVersion after the write = %s, stored %s (read %s)", pu.ResourceVersion, stored.ResourceVersion, base.ResourceVersion)
	}

	// A second write from the first read: the object has moved on.
	next := stale.DeepCopy()
	next.Status = statusAfter()
	err := r.writeStatus(ctx, stale, next)
	if !apierrors.IsConflict(err) {
		t.Fatalf("write from a stale read: err = %v, want a conflict", err)
	}
	after := &rolesyncv1.ProxyUser{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pu), after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != stored.ResourceVersion || !equality.Semantic.DeepEqual(after.Status, stored.Status) {
		t.Fatalf("a refused write changed the object: %+v", after.Status)
	}
}
