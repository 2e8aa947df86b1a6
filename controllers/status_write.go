package controllers

import (
	"context"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// statusPatch is the JSON patch (RFC 6902) that sets pu's status as a
// whole, with base's resourceVersion as its precondition (a status
// computed from a stale read is refused with a conflict). The controller
// is status's one writer and the CRD makes status atomic, so the new
// status replaces the stored one: one marshal of the status, no diff of
// two copies of the object.
func statusPatch(base, pu *rolesyncv1.ProxyUser) ([]byte, error) {
	status, err := json.Marshal(pu.Status)
	if err != nil {
		return nil, err
	}
	rv, err := json.Marshal(base.ResourceVersion)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(status)+len(rv)+96)
	out = append(out, `[{"op":"replace","path":"/metadata/resourceVersion","value":`...)
	out = append(out, rv...)
	out = append(out, `},{"op":"add","path":"/status","value":`...)
	out = append(out, status...)
	return append(out, "}]"...), nil
}

// writeStatus writes pu's status over base's (statusPatch)
// and reads back only the object's metadata: the apiserver encodes, and
// the manager decodes, a PartialObjectMetadata instead of the whole
// ProxyUser (the controller does not read the answer's spec or status).
// pu's resourceVersion becomes the written one.
func (r *ProxyUserReconciler) writeStatus(ctx context.Context, base, pu *rolesyncv1.ProxyUser) error {
	data, err := statusPatch(base, pu)
	if err != nil {
		return fmt.Errorf("build the status patch: %w", err)
	}
	written := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: pu.Namespace, Name: pu.Name}}
	written.SetGroupVersionKind(rolesyncv1.GroupVersion.WithKind("ProxyUser"))
	if err := r.Status().Patch(ctx, written, client.RawPatch(types.JSONPatchType, data)); err != nil {
		return err
	}
	pu.ResourceVersion = written.ResourceVersion
	return nil
}
