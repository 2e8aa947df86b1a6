package controllers

import (
	"context"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxydb"
	"github.com/rolesync/rolesync/internal/proxyuser"
)

// Nothing the controller remembers per user outlives the user: releasing
// a deleted user drops its drift check, correction and team check marks.
func TestFinalizeForgetsTheUser(t *testing.T) {
	obj := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gone", UID: "uid-gone", Finalizers: []string{proxyuser.Finalizer}}}
	obj.Spec.UserID = "gone"
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(obj).Build()
	ctx := context.Background()
	pu := &rolesyncv1.ProxyUser{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), pu); err != nil {
		t.Fatal(err)
	}
	r := &ProxyUserReconciler{Client: c}
	r.markChecked(pu.UID, rolesyncv1.RoleInternalUser)
	r.noteCorrection(pu.UID)
	r.teamsChecked.Store(pu.UID, time.Now())
	r.markChecked("uid-other", rolesyncv1.RoleInternalUser) // another user's mark stays
	if err := r.finalize(ctx, pu); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*sync.Map{"checked": &r.checked, "corrected": &r.corrected, "teamsChecked": &r.teamsChecked} {
		if _, ok := m.Load(pu.UID); ok {
			t.Errorf("%s still holds the deleted user", name)
		}
	}
	if _, ok := r.checked.Load(k8stypes.UID("uid-other")); !ok {
		t.Error("another user's mark was dropped")
	}
}

// --deactivate-denied=false only demotes a denied user, and a grant still
// lifts the deactivations rolesync made before it was turned off.
func TestActivationFollowsTheFlag(t *testing.T) {
	denied, granted := resolution{Denied: true}, resolution{Role: rolesyncv1.RoleInternalUser}
	on, off := &ProxyUserReconciler{}, &ProxyUserReconciler{KeepDeniedActive: true}
	for _, tc := range []struct {
		r    *ProxyUserReconciler
		res  resolution
		want proxydb.Activation
	}{
		{on, denied, proxydb.ActivationDeactivate},
		{on, granted, proxydb.ActivationRestore},
		{off, denied, proxydb.ActivationLeave},
		{off, granted, proxydb.ActivationRestore},
	} {
		if got := tc.r.activation(tc.res); got != tc.want {
			t.Errorf("keepDeniedActive=%v denied=%v: %v, want %v", tc.r.KeepDeniedActive, tc.res.Denied, got, tc.want)
		}
	}
}
