// Package controllers holds one reconciler per kind.
package controllers

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/review"
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
	// Changes, when set, is told the namespace of every change to the
	// Registry's engines, after the change: the ProxyUser controller
	// re-evaluates that namespace's users from it.
	Changes *EngineChanges
	// Elected is closed once this replica leads (the manager's Elected()).
	// Every replica loads mappings into its Registry (its login server
	// decides with it), but only the leader writes RoleMapping status, so
	// replicas never race on it nor count users from caches that disagree.
	// nil means this replica always leads.
	Elected <-chan struct{}
	// Brake holds an edit that would deny or demote too many users
	// (review.Brake; the zero value is off).
	Brake review.Brake
}

// leading reports whether this replica writes status.
func (r *RoleMappingReconciler) leading() bool {
	if r.Elected == nil {
		return true
	}
	select {
	case <-r.Elected:
		return true
	default:
		return false
	}
}

// +kubebuilder:rbac:groups=rolesync.dev,resources=rolemappings,verbs=get;list;watch
// +kubebuilder:rbac:groups=rolesync.dev,resources=rolemappings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=rolesync.dev,resources=proxyusers,verbs=get;list;watch

// Reconcile runs three named steps for one RoleMapping: load it into this
// replica's Registry (every replica: its login server decides with it),
// count the users it decides, write the status if it changed. A deleted
// mapping leaves the Registry.
func (r *RoleMappingReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rm := &rolesyncv1.RoleMapping{}
	if err := r.Get(ctx, req.NamespacedName, rm); err != nil {
		if apierrors.IsNotFound(err) {
			r.unload(ctx, req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get role mapping %s: %w", req, err)
	}
	if !rm.DeletionTimestamp.IsZero() {
		r.unload(ctx, rm.Namespace, rm.Name)
		return ctrl.Result{}, nil
	}
	base := rm.DeepCopy()
	invalid, err := r.load(ctx, rm)
	if err != nil {
		return ctrl.Result{}, err
	}
	if r.leading() {
		users, err := r.countUsers(ctx, rm)
		if err != nil {
			return ctrl.Result{}, err
		}
		rm.Status.Users = users
		if !equality.Semantic.DeepEqual(base.Status, rm.Status) { // never write an unchanged status
			// The resourceVersion precondition keeps a status computed
			// from a stale read from landing: a newer object is on its way.
			err := r.Status().Patch(ctx, rm, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
			switch {
			case apierrors.IsConflict(err):
				return ctrl.Result{RequeueAfter: conflictWait}, nil
			case err != nil:
				return ctrl.Result{}, fmt.Errorf("patch role mapping status %s: %w", req, err)
			}
		}
	}
	if invalid != nil { // the spec can never work: no retry until it changes
		log.FromContext(ctx).Info("Refused invalid RoleMapping", "errors", invalid.ToAggregate().Error())
		return ctrl.Result{}, reconcile.TerminalError(invalid.ToAggregate())
	}
	return ctrl.Result{}, nil
}

// load compiles a generation the Registry has not seen yet (later
// reconciles, when its users change, only recount them), puts it (or, for
// an invalid one, its last valid generation) into the Registry, notifies
// the ProxyUser controller when the engine changed, and sets the status
// from the result. It returns the errors of an invalid spec.
func (r *RoleMappingReconciler) load(ctx context.Context, rm *rolesyncv1.RoleMapping) (field.ErrorList, error) {
	inForce, _ := r.Registry.InForce(rm.Namespace, rm.Name)
	releasing := confirmed(rm) && inForce != rm.Generation // a held generation was just confirmed
	if g, seen := r.Registry.Observed(rm.Namespace, rm.Name); seen && g == rm.Generation && !releasing &&
		(rm.Status.ObservedGeneration == rm.Generation || !r.leading()) {
		return nil, nil // refused, held or loaded already: reported once per generation, by the leader
	}
	m, errs := rolemap.Compile(rm)
	hold, err := r.hold(ctx, rm, m)
	if err != nil {
		return nil, err
	}
	switch {
	case hold != nil:
		// The mass-change brake: the engine keeps the generation in force
		// (restored from status after a restart) until an admin confirms.
		if r.restoreLastValid(rm) {
			r.notify(rm.Namespace)
		}
		r.Registry.SetInvalid(rm.Namespace, rm.Name, rm.Generation)
		rolemap.SetHeldStatus(rm, r.Registry.Mapping(rm.Namespace, rm.Name), hold.lost, hold.users, hold.threshold)
		return nil, nil
	case m != nil:
		r.Registry.Set(m)
		r.notify(rm.Namespace)
	case r.restoreLastValid(rm):
		// A restarted manager (or another replica) keeps deciding with the
		// last valid generation recorded in status.
		r.notify(rm.Namespace)
	default:
		r.Registry.SetInvalid(rm.Namespace, rm.Name, rm.Generation) // the engine keeps what it had
	}
	rolemap.SetStatus(rm, m, errs, r.Registry.Mapping(rm.Namespace, rm.Name))
	if m == nil {
		return errs, nil
	}
	return nil, nil
}

// confirmed reports whether the rolesync.dev/confirm-generation annotation
// names the mapping's current generation.
func confirmed(rm *rolesyncv1.RoleMapping) bool {
	return rm.Annotations[rolesyncv1.ConfirmGenerationAnnotation] == strconv.FormatInt(rm.Generation, 10)
}

// held is what the mass-change brake found.
type held struct{ lost, users, threshold int }

// hold decides whether the brake holds m, the valid current generation:
// it would deny or demote at least the brake's threshold of the
// namespace's users (decided on their stored claims against the engine in
// force, and with m in it; after a restart the generation in force comes
// from status), so every replica and a restarted manager decide alike.
func (r *RoleMappingReconciler) hold(ctx context.Context, rm *rolesyncv1.RoleMapping, m *rolemap.Mapping) (*held, error) {
	if m == nil || r.Brake.Percent <= 0 || confirmed(rm) || rm.Status.GenerationInForce == rm.Generation {
		return nil, nil // invalid, no brake, confirmed, or this generation is in force already
	}
	var list rolesyncv1.ProxyUserList
	if err := r.List(ctx, &list, client.InNamespace(rm.Namespace), client.UnsafeDisableDeepCopy); err != nil { // read only
		return nil, fmt.Errorf("list proxy users for the mass-change brake of %s/%s: %w", rm.Namespace, rm.Name, err)
	}
	// The engine in force, with this mapping's generation in force (from
	// status when this replica has none yet), and the one m would make.
	base := r.Registry.Mappings(rm.Namespace)
	if !slices.ContainsFunc(base, func(x *rolemap.Mapping) bool { return x.Name == rm.Name }) {
		if last := rolemap.LastValid(rm); last != nil {
			base = append(base, last)
		}
	}
	proposed := []*rolemap.Mapping{m}
	for _, x := range base {
		if x.Name != rm.Name {
			proposed = append(proposed, x)
		}
	}
	rep := review.Diff(list.Items, review.Engines{rm.Namespace: rolemap.NewEngine(base...)}, review.Engines{rm.Namespace: rolemap.NewEngine(proposed...)})
	lost, users := rep.Losses()[rm.Namespace], len(list.Items)
	if !r.Brake.Trips(lost, users) {
		return nil, nil
	}
	return &held{lost: lost, users: users, threshold: r.Brake.Threshold(users)}, nil
}

// unload removes a deleted mapping from the Registry.
func (r *RoleMappingReconciler) unload(ctx context.Context, namespace, name string) {
	if r.Registry.Delete(namespace, name) {
		log.FromContext(ctx).Info("Removed deleted RoleMapping from the engine")
		r.notify(namespace)
	}
}

// restoreLastValid puts a mapping's last valid generation, as its status
// recorded it, into the Registry when the Registry has none of its
// generations (after a restart). It reports whether it did.
func (r *RoleMappingReconciler) restoreLastValid(rm *rolesyncv1.RoleMapping) bool {
	if _, ok := r.Registry.InForce(rm.Namespace, rm.Name); ok {
		return false
	}
	m := rolemap.LastValid(rm)
	if m == nil {
		return false
	}
	r.Registry.SetObserved(m, rm.Generation)
	return true
}

// countUsers counts the ProxyUsers whose role the mapping decides (none
// when no generation of it is in force).
func (r *RoleMappingReconciler) countUsers(ctx context.Context, rm *rolesyncv1.RoleMapping) (int32, error) {
	if rm.Status.GenerationInForce == 0 {
		return 0, nil
	}
	var list rolesyncv1.ProxyUserList
	if err := r.List(ctx, &list, client.InNamespace(rm.Namespace), client.MatchingFields{proxyuser.SourceMappingIndex: rm.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return 0, fmt.Errorf("count users of role mapping %s/%s: %w", rm.Namespace, rm.Name, err)
	}
	return int32(len(list.Items)), nil
}

// notify tells the ProxyUser controller that a namespace's engine changed.
func (r *RoleMappingReconciler) notify(namespace string) {
	if r.Changes != nil {
		r.Changes.Notify(namespace)
	}
}

// SetupWithManager registers the controller; status-only updates are ignored.
func (r *RoleMappingReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		// Spec edits, and annotation edits (a confirmation of a held generation).
		For(&rolesyncv1.RoleMapping{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&rolesyncv1.ProxyUser{}, userCountHandler()).
		WatchesRawSource(r.onElection(mgr)).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles),
			// Every replica keeps its Registry current for its login server,
			// leader or not; only the leader writes status (Elected).
			NeedLeaderElection: &runOnEveryReplica,
		}).
		Named("rolemapping").
		Complete(r)
}

var runOnEveryReplica = false

// onElection enqueues every RoleMapping once this replica is elected: the
// statuses it did not write as a follower are written now.
func (r *RoleMappingReconciler) onElection(mgr ctrl.Manager) source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		if r.Elected == nil {
			return nil // always leading: every mapping is reconciled from the start
		}
		go func() {
			select {
			case <-ctx.Done():
				return
			case <-r.Elected:
			}
			if !mgr.GetCache().WaitForCacheSync(ctx) {
				return
			}
			var list rolesyncv1.RoleMappingList
			if err := r.List(ctx, &list); err != nil {
				log.FromContext(ctx).Error(err, "Failed to list role mappings after the election")
				return
			}
			for i := range list.Items {
				q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}()
		return nil
	})
}

// userCountDelay batches recounts: while thousands of users move, each
// RoleMapping is recounted (and its status written) at most once per delay.
const userCountDelay = 2 * time.Second

// userCountHandler enqueues, after userCountDelay, the RoleMappings a
// ProxyUser's status.source.roleMapping left and joined.
func userCountHandler() handler.EventHandler {
	add := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], obj client.Object) {
		if pu, ok := obj.(*rolesyncv1.ProxyUser); ok && pu.Status.Source != nil && pu.Status.Source.RoleMapping != "" {
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pu.Namespace, Name: pu.Status.Source.RoleMapping}}, userCountDelay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.Object)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			o, n := e.ObjectOld.(*rolesyncv1.ProxyUser), e.ObjectNew.(*rolesyncv1.ProxyUser)
			if sourceMapping(o) != sourceMapping(n) {
				add(q, o)
				add(q, n)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.Object)
		},
	}
}

func sourceMapping(pu *rolesyncv1.ProxyUser) string {
	if pu == nil || pu.Status.Source == nil {
		return ""
	}
	return pu.Status.Source.RoleMapping
}
