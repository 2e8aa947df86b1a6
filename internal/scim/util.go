package scim

import (
	"context"
	"reflect"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

var namespaceGVK = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}

// namespaceExists checks the tenant namespace (after authentication, so
// its existence is not revealed to strangers).
func (s *Server) namespaceExists(ctx context.Context, ns string) error {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(namespaceGVK)
	return s.client.Get(ctx, types.NamespacedName{Name: ns}, obj)
}

// Events are budgeted like the controller's (an Event is an apiserver
// write: a 10,000-member change must not double its cost): within the
// budget every directory change on a user gets its Event; beyond it they
// are dropped and counted (rolesync_scim_events_dropped_total), a group
// change of many members leaves one Event on its DirectoryGroup, and
// LiteLLM's audit log still records every row the controller writes.
const (
	eventRate  = 10
	eventBurst = 50
)

var eventsDropped = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "rolesync_scim_events_dropped_total",
	Help: "Events about directory changes on ProxyUsers dropped over the budget (10/s, burst 50).",
})

func init() { metrics.Registry.MustRegister(eventsDropped) }

func (s *Server) record(obj runtime.Object, kind, reason, format string, args ...any) {
	if s.recorder == nil || obj == nil || reflect.ValueOf(obj).IsNil() {
		return
	}
	if !s.events.Allow() {
		eventsDropped.Inc()
		return
	}
	s.recorder.Eventf(obj, nil, kind, reason, "Directory", format, args...)
}

// event records a Normal Event about a directory change on the user.
func (s *Server) event(pu *rolesyncv1.ProxyUser, reason, format string, args ...any) {
	s.record(pu, "Normal", reason, format, args...)
}

// warn records a Warning Event on the user.
func (s *Server) warn(pu *rolesyncv1.ProxyUser, reason, format string, args ...any) {
	s.record(pu, "Warning", reason, format, args...)
}
