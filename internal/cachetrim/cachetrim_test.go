package cachetrim

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
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

// Equal sources and condition lists are held once; values
// that differ in anything (a transition time) stay apart; a writer's deep
// copy of a shared list is its own.
func TestTransformSharesEqualSourcesAndConditions(t *testing.T) {
	at := metav1.Unix(1700000000, 0)
	mk := func(name string, transition metav1.Time) *rolesyncv1.ProxyUser {
		pu := user(name)
		pu.Status.Conditions[0].LastTransitionTime = transition
		pu.Status.Conditions = append(make([]metav1.Condition, 0, 4), pu.Status.Conditions...) // room to append in place
		return pu
	}
	a, b, c := mk("alice", at), mk("bob", at), mk("carol", metav1.Unix(1700000001, 0))
	for _, pu := range []*rolesyncv1.ProxyUser{a, b, c} {
		if _, err := Transform()(pu); err != nil {
			t.Fatal(err)
		}
	}
	if a.Status.Source != b.Status.Source {
		t.Error("equal sources are held twice")
	}
	if &a.Status.Conditions[0] != &b.Status.Conditions[0] {
		t.Error("equal conditions are held twice")
	}
	if &a.Status.Conditions[0] == &c.Status.Conditions[0] {
		t.Fatal("conditions with different transition times share one list")
	}
	if !c.Status.Conditions[0].LastTransitionTime.Equal(&metav1.Time{Time: time.Unix(1700000001, 0)}) {
		t.Error("the transform changed a condition")
	}

	// A writer copies, then changes its copy; the shared list is untouched.
	w := b.DeepCopy()
	w.Status.Conditions[0].Reason = "Changed"
	w.Status.Conditions = append(w.Status.Conditions, metav1.Condition{Type: "Synced"})
	if cap(a.Status.Conditions) != len(a.Status.Conditions) {
		t.Fatalf("a shared list has room (cap %d, len %d): an append would write into it", cap(a.Status.Conditions), len(a.Status.Conditions))
	}
	appended := append(b.Status.Conditions, metav1.Condition{Type: "Synced"})
	appended[0].Reason = "Changed"
	if a.Status.Conditions[0].Reason != "Resolved" || len(a.Status.Conditions) != 1 {
		t.Errorf("a change to a copy reached the shared list: %+v", a.Status.Conditions)
	}
}

// The tables hold what they share weakly: once no cached user holds a
// value, its entry goes.
func TestSharedValuesGoWithTheirUsers(t *testing.T) {
	before := conditionSets.len()
	func() {
		for i := range 100 {
			pu := user(fmt.Sprintf("gone-%d", i))
			pu.Status.Conditions[0].Message = fmt.Sprintf("only %d", i)
			if _, err := Transform()(pu); err != nil {
				t.Fatal(err)
			}
		}
	}()
	if got := conditionSets.len(); got < before+100 {
		t.Fatalf("%d condition lists held, want at least %d", got, before+100)
	}
	deadline := time.Now().Add(10 * time.Second)
	for conditionSets.len() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d condition lists still held after their users are gone (%d before)", conditionSets.len(), before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
