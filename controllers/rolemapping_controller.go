// Package controllers holds one reconciler per kind.
package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// RoleMappingReconciler compiles each RoleMapping, publishes the valid ones
// to the Registry (which the login server and the ProxyUser controller
// evaluate with) and reports the result in the Ready condition.
type RoleMappingReconciler struct {
	client.Client
	Registry *rolemap.Registry
	// MaxConcurrentReconciles defaults to 1.
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=rolesync.dev,resources=rolemappings,verbs=get;list;watch
// +kubebuilder:rbac:groups=rolesync.dev,resources=rolemappings/status,verbs=get;update;patch

// Reconcile compiles one RoleMapping.
func (r *RoleMappingReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rm := &rolesyncv1.RoleMapping{}
	if err := r.Get(ctx, req.NamespacedName, rm); err != nil {
		if apierrors.IsNotFound(err) {
			if r.Registry.Delete(req.Namespace, req.Name) {
				log.FromContext(ctx).Info("Removed deleted RoleMapping from the engine")
			}
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get role mapping %s: %w", req, err)
	}
	if !rm.DeletionTimestamp.IsZero() {
		r.Registry.Delete(rm.Namespace, rm.Name)
		return ctrl.Result{}, nil
	}

	m, errs := rolemap.Compile(rm)
	if m != nil {
		r.Registry.Set(m)
	} else {
		r.Registry.Delete(rm.Namespace, rm.Name)
	}
	base := rm.DeepCopy()
	setRoleMappingStatus(rm, m, errs)
	if !equality.Semantic.DeepEqual(base.Status, rm.Status) { // never write an unchanged status
		if err := r.Status().Patch(ctx, rm, client.MergeFrom(base)); err != nil {
			return ctrl.Result{}, fmt.Errorf("patch role mapping status %s: %w", req, err)
		}
	}
	if m == nil {
		log.FromContext(ctx).Info("Refused invalid RoleMapping", "errors", errs.ToAggregate().Error())
		return ctrl.Result{}, reconcile.TerminalError(errs.ToAggregate())
	}
	return ctrl.Result{}, nil
}

// setRoleMappingStatus computes the status from the compile result. It is
// pure, so it is table-tested without an apiserver.
func setRoleMappingStatus(rm *rolesyncv1.RoleMapping, m *rolemap.Mapping, errs field.ErrorList) {
	cond := metav1.Condition{Type: rolesyncv1.ConditionReady, ObservedGeneration: rm.Generation}
	if m != nil {
		cond.Status, cond.Reason = metav1.ConditionTrue, rolesyncv1.ReasonValid
		cond.Message = fmt.Sprintf("%d rules compiled", m.Rules())
		rm.Status.Rules = int32(m.Rules())
	} else {
		cond.Status, cond.Reason = metav1.ConditionFalse, rolesyncv1.ReasonInvalidSpec
		cond.Message = truncate(errs.ToAggregate().Error(), 4096)
		rm.Status.Rules = 0
	}
	apimeta.SetStatusCondition(&rm.Status.Conditions, cond)
	rm.Status.ObservedGeneration = rm.Generation
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// SetupWithManager registers the controller; status-only updates are ignored.
func (r *RoleMappingReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&rolesyncv1.RoleMapping{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Named("rolemapping").
		Complete(r)
}
