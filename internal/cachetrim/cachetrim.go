// Package cachetrim makes the manager's informer cache hold each object
// in as little memory as it can without losing anything a reader reads:
// managedFields (never read, a third of an object) are dropped, and the
// strings thousands of ProxyUsers repeat — namespace, finalizer, issuer,
// conditions' types, reasons and messages, the role and its source — are
// kept once (Go's unique package) instead of once per user, and so are
// equal role sources and condition lists (share.go). Cached objects
// are read-only (the cache hands out deep copies, and readers that skip
// the copy must not modify them), so sharing a string is safe.
package cachetrim

import (
	"unique"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// Transform is the cache's DefaultTransform.
func Transform() toolscache.TransformFunc {
	return func(in any) (any, error) {
		// Nil-check first: kubernetes/kubernetes#124337.
		if obj, err := meta.Accessor(in); err == nil && obj.GetManagedFields() != nil {
			obj.SetManagedFields(nil)
		}
		if pu, ok := in.(*rolesyncv1.ProxyUser); ok {
			ProxyUser(pu)
		}
		return in, nil
	}
}

func s(v string) string {
	if v == "" {
		return v
	}
	return unique.Make(v).Value()
}

// ProxyUser shares the strings many users repeat.
func ProxyUser(pu *rolesyncv1.ProxyUser) {
	pu.APIVersion, pu.Kind = s(pu.APIVersion), s(pu.Kind)
	pu.Namespace = s(pu.Namespace)
	for i := range pu.Finalizers {
		pu.Finalizers[i] = s(pu.Finalizers[i])
	}
	for k, v := range pu.Labels {
		pu.Labels[k] = s(v)
	}
	pu.Spec.Issuer = s(pu.Spec.Issuer)
	if d := pu.Spec.Directory; d != nil {
		for i := range d.Groups {
			d.Groups[i].ID, d.Groups[i].DisplayName = s(d.Groups[i].ID), s(d.Groups[i].DisplayName)
		}
	}
	st := &pu.Status
	st.Role, st.SyncedRole = rolesyncv1.Role(s(string(st.Role))), rolesyncv1.Role(s(string(st.SyncedRole)))
	if src := st.Source; src != nil {
		src.Type = rolesyncv1.SourceType(s(string(src.Type)))
		src.RoleMapping, src.Claim, src.Value, src.Description = s(src.RoleMapping), s(src.Claim), s(src.Value), s(src.Description)
	}
	for i := range st.Teams {
		t := &st.Teams[i]
		t.Team, t.Role, t.Source = s(t.Team), rolesyncv1.TeamRole(s(string(t.Role))), s(t.Source)
	}
	st.Source = sharedSource(st.Source)
	for i := range st.Conditions {
		c := &st.Conditions[i]
		c.Type, c.Reason, c.Message = s(c.Type), s(c.Reason), s(c.Message)
		c.Status = metav1.ConditionStatus(s(string(c.Status)))
	}
	st.Conditions = sharedConditions(st.Conditions)
}
