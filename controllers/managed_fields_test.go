package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// statusFields returns the fieldsV1 of pu's managed-fields entry for the
// status subresource ("" if none).
func statusFields(t *testing.T, ns, name string) string {
	t.Helper()
	pu := &rolesyncv1.ProxyUser{}
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, pu); err != nil {
		t.Fatal(err)
	}
	for _, e := range pu.ManagedFields {
		if e.Subresource == "status" && e.FieldsV1 != nil {
			return e.FieldsV1.GetRawString()
		}
	}
	return ""
}

// TestStatusIsOneManagedField: the apiserver tracks a ProxyUser's status
// as one field (the controller is its one writer): its managed-fields
// entry names f:status, not each condition, team and source field, which
// the apiserver would otherwise keep decoded for every user in its watch
// cache.
func TestStatusIsOneManagedField(t *testing.T) {
	needSuite(t)
	url, err := pgServer.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t)
	startOperator(t, ns, Options{Store: openDB(t, url), ResyncPeriod: time.Hour})
	createMapping(t, ns, keycloakMapping, true)
	seedRows(t, url, ns, "m", 1, 2)
	createMany(t, 1, func(i int) *rolesyncv1.ProxyUser {
		return newUser(ns, fmt.Sprintf("m%02d", i), keycloakClaims("team-d"), true)
	})
	waitSettled(t, ns, 1, rolesyncv1.RoleInternalUser)
	if got := statusFields(t, ns, "m00"); got != `{"f:status":{}}` {
		t.Fatalf("status managed fields = %s, want {\"f:status\":{}}", got)
	}
}

// TestStatusWritesAfterUpgradingToAnAtomicStatus: an object whose status
// the apiserver tracked field by field (written under an older CRD)
// takes status writes once the CRD makes status atomic, and its entry
// becomes f:status: upgrading rolesync breaks no existing user.
func TestStatusWritesAfterUpgradingToAnAtomicStatus(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	setStatusMapType := func(mapType *string) {
		t.Helper()
		eventually(t, 30*time.Second, func() error {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := k8sClient.Get(ctx, types.NamespacedName{Name: "proxyusers.rolesync.dev"}, crd); err != nil {
				return err
			}
			schema := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
			st := schema.Properties["status"]
			st.XMapType = mapType
			schema.Properties["status"] = st
			return k8sClient.Update(ctx, crd)
		})
	}
	setStatusMapType(nil) // as rolesync's CRD was before
	t.Cleanup(func() { setStatusMapType(ptr.To("atomic")) })

	ns := newNamespace(t)
	pu := newUser(ns, "old", keycloakClaims("team-d"), true) // no operator: the test writes status
	if err := k8sClient.Create(ctx, pu); err != nil {
		t.Fatal(err)
	}
	write := func(role rolesyncv1.Role) error {
		base := pu.DeepCopy()
		pu.Status.Role = role
		pu.Status.Conditions = []metav1.Condition{{Type: rolesyncv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Resolved",
			Message: "role " + string(role), LastTransitionTime: metav1.Now()}}
		return k8sClient.Status().Patch(ctx, pu, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}), client.FieldOwner("manager"))
	}
	roles := []rolesyncv1.Role{rolesyncv1.RoleInternalUser, rolesyncv1.RoleProxyAdminViewer}
	i := 0
	eventually(t, 30*time.Second, func() error { // until the apiserver serves the granular schema
		i++
		if err := write(roles[i%2]); err != nil {
			return err
		}
		if got := statusFields(t, ns, "old"); !strings.Contains(got, `"k:{\"type\":\"Ready\"}"`) {
			return fmt.Errorf("status managed fields %s: not yet field by field", got)
		}
		return nil
	})

	setStatusMapType(ptr.To("atomic"))
	eventually(t, 30*time.Second, func() error {
		i++
		if err := write(roles[i%2]); err != nil {
			t.Fatalf("a status write after the upgrade failed: %v", err)
		}
		if got := statusFields(t, ns, "old"); got != `{"f:status":{}}` {
			return fmt.Errorf("status managed fields %s, want {\"f:status\":{}}", got)
		}
		return nil
	})
	var fresh rolesyncv1.ProxyUser
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pu), &fresh); err != nil {
		t.Fatal(err)
	}
	if fresh.Status.Role != roles[i%2] {
		raw, _ := json.Marshal(fresh.Status)
		t.Fatalf("status after the upgrade = %s, want role %s", raw, roles[i%2])
	}
}
