package cachetrim

import (
	"strings"
	"testing"
	"unsafe"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// user builds a ProxyUser whose strings are fresh allocations, as the
// decoder gives each object its own.
func user(name string) *rolesyncv1.ProxyUser {
	fresh := func(v string) string { return strings.Clone(v) }
	pu := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: fresh("team-a"), Finalizers: []string{fresh("rolesync.dev/finalizer")},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "rolesync"}}}}
	pu.Spec.UserID, pu.Spec.Issuer = name, fresh("https://idp.example.com")
	pu.Status.Role = rolesyncv1.Role(fresh("internal_user"))
	pu.Status.Source = &rolesyncv1.RoleSource{Type: rolesyncv1.SourceType(fresh("RoleMapping")), RoleMapping: fresh("staff"), Description: fresh("RoleMapping staff rule 0")}
	pu.Status.Conditions = []metav1.Condition{{Type: fresh("Ready"), Status: metav1.ConditionStatus(fresh("True")), Reason: fresh("Resolved"), Message: fresh("role internal_user")}}
	return pu
}

func TestTransformKeepsEverythingReadAndSharesRepeatedStrings(t *testing.T) {
	a, b := user("alice"), user("bob")
	want := a.DeepCopy()
	want.ManagedFields = nil
	for _, pu := range []*rolesyncv1.ProxyUser{a, b} {
		if _, err := Transform()(pu); err != nil {
			t.Fatal(err)
		}
	}
	if !equality.Semantic.DeepEqual(a, want) {
		t.Fatalf("the transform changed what readers read:\n%+v\nwant\n%+v", a, want)
	}
	same := func(what, x, y string) {
		if unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s is held twice", what)
		}
	}
	same("namespace", a.Namespace, b.Namespace)
	same("finalizer", a.Finalizers[0], b.Finalizers[0])
	same("issuer", a.Spec.Issuer, b.Spec.Issuer)
	same("role", string(a.Status.Role), string(b.Status.Role))
	same("source description", a.Status.Source.Description, b.Status.Source.Description)
	same("condition reason", a.Status.Conditions[0].Reason, b.Status.Conditions[0].Reason)
	same("condition message", a.Status.Conditions[0].Message, b.Status.Conditions[0].Message)
	if unsafe.StringData(a.Name) == unsafe.StringData(b.Name) {
		t.Error("names differ and must stay apart")
	}
}
