package rolemap

import (
	"strings"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

func strPtr(s string) *string { return &s }

func TestSetRoleMappingStatus(t *testing.T) {
	rm := &rolesyncv1.RoleMapping{}
	rm.Generation = 3
	m, _ := Compile(&rolesyncv1.RoleMapping{Spec: rolesyncv1.RoleMappingSpec{Claim: "g", Rules: []rolesyncv1.RoleRule{{ClaimMatcher: rolesyncv1.ClaimMatcher{Equals: strPtr("a")}, Role: rolesyncv1.RoleInternalUser}}}})
	rm.Spec = rolesyncv1.RoleMappingSpec{Claim: "g", Rules: []rolesyncv1.RoleRule{{ClaimMatcher: rolesyncv1.ClaimMatcher{Equals: strPtr("a")}, Role: rolesyncv1.RoleInternalUser}}}
	m.Generation = 3
	SetStatus(rm, m, nil, m)
	c := apimeta.FindStatusCondition(rm.Status.Conditions, rolesyncv1.ConditionReady)
	if c.Status != metav1.ConditionTrue || c.Reason != rolesyncv1.ReasonValid || rm.Status.Rules != 1 || rm.Status.ObservedGeneration != 3 ||
		rm.Status.GenerationInForce != 3 || len(rm.Status.LastValidSpec) == 0 {
		t.Fatalf("valid: %+v %+v", c, rm.Status)
	}
	if spec, err := DecodeSpec(rm.Status.LastValidSpec); err != nil || spec.Claim != "g" || len(spec.Rules) != 1 {
		t.Fatalf("lastValidSpec: %+v %v", spec, err)
	}
	errs := field.ErrorList{field.Invalid(field.NewPath("spec", "rules").Index(0).Child("regex"), "(", "missing closing )")}
	rm.Generation = 4
	rm.Status.LastValidSpec = nil // the write recording generation 3 was lost (a conflict)
	SetStatus(rm, nil, errs, m)
	c = apimeta.FindStatusCondition(rm.Status.Conditions, rolesyncv1.ConditionReady)
	if c.Status != metav1.ConditionFalse || c.Reason != rolesyncv1.ReasonInvalidSpec || !strings.Contains(c.Message, "spec.rules[0].regex") || rm.Status.Rules != 0 || rm.Status.ObservedGeneration != 4 {
		t.Fatalf("invalid: %+v %+v", c, rm.Status)
	}
	if rm.Status.GenerationInForce != 3 || len(rm.Status.LastValidSpec) == 0 || !strings.Contains(c.Message, "generation 3 stays in force") {
		t.Fatalf("the last valid generation must stay in force, recorded for a restart: %+v", rm.Status)
	}
	if LastValid(rm) == nil {
		t.Fatal("a restarted manager could not restore the generation in force")
	}
	never := &rolesyncv1.RoleMapping{}
	never.Generation = 1
	SetStatus(never, nil, errs, nil)
	if never.Status.GenerationInForce != 0 || never.Status.LastValidSpec != nil {
		t.Fatalf("never valid: %+v", never.Status)
	}
}
