package controllers

import (
	"context"
	"encoding/json"
	"fmt"

	jsonpatch "github.com/evanphx/json-patch/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// statusPatch is the JSON merge patch that takes base's status to pu's,
// with base's resourceVersion as its precondition (a status computed from
// a stale read is refused with a conflict). It is built from the two
// statuses alone: a few hundred bytes marshalled, not the whole object
// twice.
func statusPatch(base, pu *rolesyncv1.ProxyUser) ([]byte, error) {
	from, err := json.Marshal(base.Status)
	if err != nil {
		return nil, err
	}
	to, err := json.Marshal(pu.Status)
	if err != nil {
		return nil, err
	}
	diff, err := jsonpatch.CreateMergePatch(from, to)
	if err != nil {
		return nil, err
	}
	type meta struct {
		ResourceVersion string `json:"resourceVersion"`
	}
	return json.Marshal(struct {
		Metadata meta            `json:"metadata"`
		Status   json.RawMessage `json:"status"`
	}{meta{base.ResourceVersion}, diff})
}

// writeStatus patches the status subresource from base's status to pu's
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
	if err := r.Status().Patch(ctx, written, client.RawPatch(types.MergePatchType, data)); err != nil {
		return err
	}
	pu.ResourceVersion = written.ResourceVersion
	return nil
}
