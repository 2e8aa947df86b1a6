package scim

import (
	"context"
	"errors"
	"net/url"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

var namespaceGVK = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func urlUnescape(p string) (string, error) { return url.PathUnescape(p) }

// namespaceExists checks the tenant namespace (after authentication, so
// its existence is not revealed to strangers).
func (s *Server) namespaceExists(ctx context.Context, ns string) error {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(namespaceGVK)
	return s.client.Get(ctx, types.NamespacedName{Name: ns}, obj)
}

// event records a Normal Event about a directory change on the user.
func (s *Server) event(pu *rolesyncv1.ProxyUser, reason, format string, args ...any) {
	if s.recorder != nil && pu != nil {
		s.recorder.Eventf(pu, nil, "Normal", reason, "Directory", format, args...)
	}
}

// warn records a Warning Event on the user.
func (s *Server) warn(pu *rolesyncv1.ProxyUser, reason, format string, args ...any) {
	if s.recorder != nil && pu != nil {
		s.recorder.Eventf(pu, nil, "Warning", reason, "Directory", format, args...)
	}
}
