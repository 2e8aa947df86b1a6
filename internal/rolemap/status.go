package rolemap

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// maxLastValidSpec caps status.lastValidSpec (compressed).
const maxLastValidSpec = 256 << 10

// EncodeSpec is the gzip-compressed JSON of spec (status.lastValidSpec), or nil
// when it would exceed 256 KiB.
func EncodeSpec(spec *rolesyncv1.RoleMappingSpec) []byte {
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b) // no name or time in the header: equal specs give equal bytes
	if _, err := zw.Write(raw); err != nil || zw.Close() != nil || b.Len() > maxLastValidSpec {
		return nil
	}
	return b.Bytes()
}

// DecodeSpec reverses EncodeSpec.
func DecodeSpec(data []byte) (*rolesyncv1.RoleMappingSpec, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(zr, 16<<20))
	if err != nil {
		return nil, err
	}
	spec := &rolesyncv1.RoleMappingSpec{}
	return spec, json.Unmarshal(raw, spec)
}

// MappingInForce is the generation of rm the engine decides with, as the
// RoleMapping controller loads it: the spec when it compiles, else the last
// valid generation its status records (nil when there is none, so the
// mapping decides nothing). errs are the spec's errors (nil when it
// compiles). The controller, rolesync diff and rolesync explain --user
// all go through it.
func MappingInForce(rm *rolesyncv1.RoleMapping) (*Mapping, field.ErrorList) {
	m, errs := Compile(rm)
	if m != nil {
		return m, nil
	}
	return LastValid(rm), errs
}

// LastValid compiles the last valid generation rm's status records
// (status.generationInForce and lastValidSpec), or returns nil.
func LastValid(rm *rolesyncv1.RoleMapping) *Mapping {
	if rm.Status.GenerationInForce == 0 || len(rm.Status.LastValidSpec) == 0 {
		return nil
	}
	spec, err := DecodeSpec(rm.Status.LastValidSpec)
	if err != nil {
		return nil
	}
	old := rm.DeepCopy()
	old.Spec, old.Generation = *spec, rm.Status.GenerationInForce
	m, errs := Compile(old)
	if len(errs) != 0 {
		return nil
	}
	return m
}

// SetStatus computes the status from the compile result and the mapping
// the engine decides with (nil: none). status.lastValidSpec always records
// the spec in force, taken from the mapping itself: a status write that was
// lost (a conflict) for the valid generation cannot leave an invalid one
// without the record a restarted manager restores from. It is pure, so it
// is table-tested without an apiserver.
func SetStatus(rm *rolesyncv1.RoleMapping, m *Mapping, errs field.ErrorList, inForceMapping *Mapping) {
	var inForce int64
	if inForceMapping != nil {
		inForce = inForceMapping.Generation
	}
	cond := metav1.Condition{Type: rolesyncv1.ConditionReady, ObservedGeneration: rm.Generation}
	if m != nil {
		cond.Status, cond.Reason = metav1.ConditionTrue, rolesyncv1.ReasonValid
		cond.Message = fmt.Sprintf("%d rules compiled", m.Rules())
		rm.Status.Rules = int32(m.Rules())
		rm.Status.LastValidSpec = EncodeSpec(&rm.Spec)
	} else {
		cond.Status, cond.Reason = metav1.ConditionFalse, rolesyncv1.ReasonInvalidSpec
		cond.Message = errs.ToAggregate().Error()
		if inForce != 0 {
			cond.Message = fmt.Sprintf("generation %d stays in force; ", inForce) + cond.Message
			if spec := inForceMapping.Spec(); spec != nil {
				rm.Status.LastValidSpec = EncodeSpec(spec)
			}
		} else {
			cond.Message = "no generation was ever valid: the mapping decides nothing; " + cond.Message
			rm.Status.LastValidSpec = nil
		}
		cond.Message = rolesyncv1.Truncate(cond.Message, rolesyncv1.MaxMappingMessageLength)
		rm.Status.Rules = 0
	}
	rm.Status.GenerationInForce = inForce
	rm.Status.HeldGeneration, rm.Status.HeldUsers = 0, 0
	apimeta.SetStatusCondition(&rm.Status.Conditions, cond)
	rm.Status.ObservedGeneration = rm.Generation
}

// SetHeldStatus records that the mass-change brake holds the (valid)
// current generation: it would deny or demote lost of the namespace's
// users, at least threshold; inForce keeps deciding.
func SetHeldStatus(rm *rolesyncv1.RoleMapping, inForce *Mapping, lost, users, threshold int) {
	keeps := "no earlier generation was in force: the mapping decides nothing until then"
	rm.Status.GenerationInForce = 0
	if inForce != nil {
		keeps = fmt.Sprintf("generation %d stays in force", inForce.Generation)
		rm.Status.GenerationInForce = inForce.Generation
		if spec := inForce.Spec(); spec != nil {
			rm.Status.LastValidSpec = EncodeSpec(spec)
		}
	}
	msg := fmt.Sprintf("generation %d would deny or demote %d of the namespace's %d users (the mass-change brake holds %d or more); %s. "+
		"Check it with `rolesync diff`, then confirm: kubectl annotate rolemapping %s %s=%d",
		rm.Generation, lost, users, threshold, keeps, rm.Name, rolesyncv1.ConfirmGenerationAnnotation, rm.Generation)
	apimeta.SetStatusCondition(&rm.Status.Conditions, metav1.Condition{Type: rolesyncv1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: rolesyncv1.ReasonMassChangeHeld, Message: rolesyncv1.Truncate(msg, rolesyncv1.MaxMappingMessageLength), ObservedGeneration: rm.Generation})
	rm.Status.HeldGeneration, rm.Status.HeldUsers = rm.Generation, int32(lost)
	rm.Status.ObservedGeneration = rm.Generation
}
