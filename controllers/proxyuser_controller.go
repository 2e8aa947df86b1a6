package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/adaptive"
	"github.com/rolesync/rolesync/internal/priority"
	"github.com/rolesync/rolesync/internal/proxydb"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// DriftPolicy says what the controller does when the database role differs
// from status.role.
type DriftPolicy string

const (
	// DriftEnforce rewrites the row and records a DriftCorrected Event.
	DriftEnforce DriftPolicy = "Enforce"
	// DriftReport sets Drifted=True and leaves the row.
	DriftReport DriftPolicy = "Report"
)

// KeyRevocation says what happens to a user's LiteLLM virtual keys when
// rolesync takes the user's role away.
type KeyRevocation string

const (
	// KeyRevocationOff leaves keys alone: a denied user's row is demoted,
	// but keys they already hold keep reaching the LLM routes.
	KeyRevocationOff KeyRevocation = "Off"
	// KeyRevocationBlock blocks the keys of a denied user, and of a user
	// deleted with deletionPolicy Downgrade; they are unblocked (only those
	// rolesync blocked) when the user is granted a role again.
	KeyRevocationBlock KeyRevocation = "Block"
)

// UserStore is the proxy database as the ProxyUser controller uses it;
// *proxydb.DB implements it.
type UserStore interface {
	Find(ctx context.Context, userID, email string) (proxydb.Row, bool, error)
	Apply(ctx context.Context, c proxydb.Change) (proxydb.Outcome, error)
	Delete(ctx context.Context, rowUserID, reason, object string) error
}

// retryMaxDelay caps the backoff of a user whose sync keeps failing.
const retryMaxDelay = 30 * time.Second

// conflictWait is how soon a ProxyUser is looked at again after a write
// conflict (the cache was behind the apiserver).
const conflictWait = 100 * time.Millisecond

// registryWait is how long a ProxyUser waits for the Registry to load its
// namespace's RoleMappings before it is looked at again.
const registryWait = time.Second

// ProxyUserReconciler resolves each ProxyUser's role from the Registry (or
// its roleOverride), records it in status and keeps it in the proxy
// database.
type ProxyUserReconciler struct {
	client.Client
	Registry *rolemap.Registry
	// Store is the proxy database; nil runs without one (Synced=Unknown).
	Store    UserStore
	Recorder events.EventRecorder
	// DriftPolicy defaults to Enforce.
	DriftPolicy DriftPolicy
	// KeyRevocation defaults to Off.
	KeyRevocation KeyRevocation
	// KeepDeniedActive leaves a denied user's LiteLLM activation alone
	// (--deactivate-denied=false); by default a denied user is deactivated.
	// A user the directory deprovisioned is deactivated regardless.
	KeepDeniedActive bool
	// GroupsClaim is the claim the directory's groups are
	// (--scim-groups-claim); it defaults to proxyuser.DefaultGroupsClaim.
	GroupsClaim string
	// Now is the clock claims are aged by (maxClaimAge); time.Now when nil.
	Now func() time.Time
	// LiteLLMCacheTTL is LiteLLM's user cache TTL
	// (general_settings.user_api_key_cache_ttl): a write is in force in
	// LiteLLM at most this long after it. It defaults to
	// DefaultLiteLLMCacheTTL.
	LiteLLMCacheTTL time.Duration
	// ResyncPeriod is how often (jittered by 10%) each user's row is compared
	// with status; it defaults to DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// MaxConcurrentReconciles defaults to 1.
	MaxConcurrentReconciles int
	// Changes carries the namespaces whose engine changed (from the
	// RoleMapping controller): their users are all re-evaluated.
	Changes *EngineChanges
	// Teams writes team memberships (nil: teams resolve into status only).
	Teams        MembershipWriter
	teamsChecked sync.Map // UID -> time.Time the user's memberships were last confirmed

	// sweep, when set, reads the rows of many users at once for their
	// drift checks (see driftSweep); Setup sets it when Store is a
	// BatchStore.
	sweep *driftSweep
	// cached, when set, is the informer store of ProxyUsers: namespaces are
	// re-evaluated from it without copying every object.
	cached toolscache.Indexer

	// Priority, when set, makes each status write wait (at most
	// priority.MaxWait) while a login is being answered: the login's write
	// goes first.
	Priority *priority.Gate
	// Writes, when set, bounds the status writes in flight at the
	// apiserver by their latency (see package adaptive); nil: unbounded
	// (MaxConcurrentReconciles).
	Writes *adaptive.Limiter

	// Moves, when set, collects the role changes RoleMapping changes cause
	// for one UsersMoved Event per mapping (MoveReporter) instead of one
	// RoleChanged Event per user.
	Moves *MoveTally
	// EventRate and EventBurst budget the Events the controller emits;
	// zero means DefaultEventRate and DefaultEventBurst.
	EventRate  float64
	EventBurst int

	// checked remembers, per ProxyUser, the row role last confirmed and when,
	// so drift reads happen once per resync period and never write. It is
	// memory only: after a restart every row is read once.
	checked sync.Map // types.UID -> checkMark
	// corrected remembers, per ProxyUser, when drift was last corrected, to
	// tell a competing writer from a one-off edit.
	corrected sync.Map // types.UID -> time.Time

	eventsOnce  sync.Once
	eventBudget *rate.Limiter
}

// Events are budgeted: a mapping edit that moves 10,000 users must not
// double the apiserver writes it costs (an Event is a write like a status
// patch). Within the budget every change gets its Event; beyond it Events
// are dropped and counted in rolesync_proxyuser_events_dropped_total, while
// status (role, source, conditions' lastTransitionTime) records every change.
const (
	DefaultEventRate  = 10 // Events per second, sustained
	DefaultEventBurst = 50 // Events at once
)

var eventsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "rolesync_proxyuser_events_dropped_total",
	Help: "ProxyUser Events not emitted because more were due than the event budget (--event-rate, --event-burst) allows; status still records each change.",
}, []string{"reason"})

var writeLimit = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "rolesync_proxyuser_status_write_limit",
	Help: "ProxyUser status writes allowed in flight at the apiserver, found from their latency (lower while the apiserver queues).",
})

var priorityWaits = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "rolesync_proxyuser_login_waits_total",
	Help: "ProxyUser status writes that waited (at most 25ms each) for a login in flight to write first.",
})

func init() {
	metrics.Registry.MustRegister(eventsDropped, priorityWaits, writeLimit)
}

// eventf emits an Event within the budget.
func (r *ProxyUserReconciler) eventf(pu *rolesyncv1.ProxyUser, eventtype, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	r.eventsOnce.Do(func() {
		rateLimit, burst := r.EventRate, r.EventBurst
		if rateLimit <= 0 {
			rateLimit = DefaultEventRate
		}
		if burst <= 0 {
			burst = DefaultEventBurst
		}
		r.eventBudget = rate.NewLimiter(rate.Limit(rateLimit), burst)
	})
	if !r.eventBudget.Allow() {
		eventsDropped.WithLabelValues(reason).Inc()
		return
	}
	r.Recorder.Eventf(pu, nil, eventtype, reason, action, note, args...)
}

type checkMark struct {
	role rolesyncv1.Role
	at   time.Time
}

// +kubebuilder:rbac:groups=rolesync.dev,resources=proxyusers,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=rolesync.dev,resources=proxyusers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=rolesync.dev,resources=proxyusers/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile resolves and syncs one ProxyUser.
func (r *ProxyUserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	pu := &rolesyncv1.ProxyUser{}
	if err := r.Get(ctx, req.NamespacedName, pu); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var pf *prefetch // the row the drift sweep read, if this is its call
	if p, ok := r.sweep.take(pu.UID); ok {
		pf = &p
	}
	if !pu.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, pu)
	}
	if !controllerutil.ContainsFinalizer(pu, proxyuser.Finalizer) {
		if err := r.patchFinalizers(ctx, pu, controllerutil.AddFinalizer); err != nil {
			if apierrors.IsConflict(err) { // a stale cache read: look again soon, quietly
				return ctrl.Result{RequeueAfter: conflictWait}, nil
			}
			return ctrl.Result{}, err
		}
	}
	loaded, err := r.mappingsLoaded(ctx, pu.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !loaded {
		// The RoleMapping controller has not caught up: deciding now could
		// deny users whose mapping is about to load. An expected wait, not
		// an error (an error would back off and log).
		return ctrl.Result{RequeueAfter: registryWait}, nil
	}

	base := pu.DeepCopy()
	defer func() {
		if !equality.Semantic.DeepEqual(base.Status, pu.Status) { // never write an unchanged status
			// The controller is the one writer of every condition (see
			// api/v1 conditions.go); the resourceVersion precondition still
			// keeps a status computed from a stale read from landing.
			// A login in flight writes first: looked at once this write
			// holds its slot, right before it goes to the apiserver (a
			// write may queue for a slot far longer than a login takes).
			err := r.Writes.DoAfter(ctx, func(ctx context.Context) {
				if r.Priority.Wait(ctx) {
					priorityWaits.Inc()
				}
			}, func() error {
				return r.writeStatus(ctx, base, pu)
			})
			writeLimit.Set(float64(r.Writes.Limit()))
			switch {
			case apierrors.IsConflict(err): // a newer object is on its way: look again, quietly
				if retErr == nil {
					result = ctrl.Result{RequeueAfter: conflictWait}
				}
			case err != nil:
				retErr = errors.Join(retErr, fmt.Errorf("patch proxy user status %s: %w", req, err))
			}
		}
	}()

	owner, err := r.olderTwin(ctx, pu)
	if err != nil {
		return ctrl.Result{}, err
	}
	if owner != "" {
		proxyuser.SetDuplicateStatus(pu, owner)
		return ctrl.Result{}, nil
	}

	claims := proxyuser.StoredClaims(pu) // decoded once for the role and the teams
	res := r.resolve(pu, claims)
	rowOwner, err := r.rowOwner(ctx, pu)
	if err != nil {
		return ctrl.Result{}, err
	}
	var sr proxyuser.SyncResult
	if rowOwner != "" {
		sr = proxyuser.SyncResult{Conflict: rowOwner} // another ProxyUser writes this user's row
	} else {
		sr = r.sync(ctx, pu, res, pf)
	}
	sr.CacheTTL = r.cacheTTL()
	tr := r.syncTeams(ctx, pu, claims, res, sr, pf)
	proxyuser.SetStatus(pu, res, sr, tr, metav1.Now())
	r.recordEvents(base, pu, res, sr)
	r.recordTeamEvents(base, pu, tr)
	if err := errors.Join(sr.Err, tr.Err); err != nil {
		return ctrl.Result{}, err // transient: retried with backoff
	}
	if d := pu.Spec.Directory; d != nil && d.Deleted && deprovisionDone(sr, tr) {
		// The directory deleted the user: the row is demoted and deactivated
		// and every key blocked (or there is no row): now the object goes
		// (its finalizer applies spec.deletionPolicy).
		if err := r.Delete(ctx, pu, client.Preconditions{UID: &pu.UID, ResourceVersion: &pu.ResourceVersion}); err != nil && !apierrors.IsNotFound(err) {
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: conflictWait}, nil
			}
			return ctrl.Result{}, fmt.Errorf("delete deprovisioned proxy user %s: %w", req, err)
		}
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: r.nextLook(pu, sr, tr)}, nil
}

// deprovisionDone reports whether a deleted directory user's
// deprovisioning is in the database: the row was written (or there is
// none, or a database is not configured) and the teams are settled.
func deprovisionDone(sr proxyuser.SyncResult, tr proxyuser.TeamsResult) bool {
	return sr.Err == nil && sr.Ambiguous == nil && sr.Conflict == "" && sr.Unmanaged == "" && !sr.Waiting && tr.Err == nil
}

// nextLook is when the user is looked at again: the soonest any step
// asks for (a row LiteLLM is about to create, a team that may appear), and
// the jittered resync at the latest.
//
// With the drift sweep the resync is the sweep's (each user once per
// period at its slot): only the sooner needs requeue (0: none).
func (r *ProxyUserReconciler) nextLook(pu *rolesyncv1.ProxyUser, sr proxyuser.SyncResult, tr proxyuser.TeamsResult) time.Duration {
	next := wait.Jitter(r.resyncPeriod(), 0.1)
	sooner := func(d time.Duration) {
		if next == 0 || d < next {
			next = d
		}
	}
	if r.sweep != nil {
		next = 0
	}
	if sr.Waiting {
		sooner(r.rowWait(pu))
	}
	if len(tr.NotFound) > 0 {
		sooner(teamRetry)
	}
	// Claims that expire (a mapping's maxClaimAge) are re-decided then,
	// not at the next resync.
	engine, _ := r.Registry.Engine(pu.Namespace)
	now := r.now()
	if at, ok := engine.NextClaimExpiry(pu.Spec.Issuer, proxyuser.ClaimsTime(pu), now); ok {
		sooner(max(at.Sub(now)+time.Second/10, time.Millisecond))
	}
	return next
}

func (r *ProxyUserReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// resolve decodes the stored claims and decides the role.
func (r *ProxyUserReconciler) resolve(pu *rolesyncv1.ProxyUser, claims map[string]any) resolution {
	engine, _ := r.Registry.Engine(pu.Namespace)
	in := proxyuser.UserInput(pu, engine, r.GroupsClaim, r.now())
	in.Stored = claims
	return proxyuser.Decide(in).Resolution
}

// recordTeamEvents emits a Warning when a templated team is dropped or a
// granted team is missing, and when drift in an owned team is corrected,
// each once per change of the TeamsSynced condition.
func (r *ProxyUserReconciler) recordTeamEvents(before, pu *rolesyncv1.ProxyUser, tr proxyuser.TeamsResult) {
	now := apimeta.FindStatusCondition(pu.Status.Conditions, rolesyncv1.ConditionTeamsSynced)
	old := apimeta.FindStatusCondition(before.Status.Conditions, rolesyncv1.ConditionTeamsSynced)
	if now == nil || (old != nil && old.Reason == now.Reason && old.Message == now.Message) {
		return
	}
	switch now.Reason {
	case rolesyncv1.ReasonTeamNotFound, rolesyncv1.ReasonTeamNotAllowed, rolesyncv1.ReasonDriftDetected:
		r.eventf(pu, "Warning", now.Reason, "SyncTeams", "%s", now.Message)
	case rolesyncv1.ReasonDriftCorrected:
		r.eventf(pu, "Warning", rolesyncv1.ReasonDriftCorrected, "SyncTeams", "%s", now.Message)
	}
}

// tallyMove counts a change caused by a RoleMapping change (the user's spec
// was already observed: no login, claims or override edit) for the
// mapping's UsersMoved Event, and reports whether it did.
func (r *ProxyUserReconciler) tallyMove(before, pu *rolesyncv1.ProxyUser, res resolution) bool {
	if r.Moves == nil || before.Status.ObservedGeneration == 0 || before.Status.ObservedGeneration != pu.Generation {
		return false
	}
	mapping := ""
	for _, src := range []*rolesyncv1.RoleSource{pu.Status.Source, before.Status.Source} {
		if src != nil && src.RoleMapping != "" {
			mapping = src.RoleMapping
			break
		}
	}
	if mapping == "" {
		return false
	}
	to := roleText(pu.Status.Role)
	if res.Denied {
		to = "denied (" + res.Reason + ")"
	}
	r.Moves.Add(pu.Namespace, mapping, roleText(before.Status.Role), to)
	return true
}

// recordEvents emits the Events of one reconcile: a role change, a drift
// correction, a sync failure's first occurrence.
func (r *ProxyUserReconciler) recordEvents(before, pu *rolesyncv1.ProxyUser, res resolution, sr proxyuser.SyncResult) {
	newlyDenied := res.Denied && !apimeta.IsStatusConditionTrue(before.Status.Conditions, rolesyncv1.ConditionDenied)
	if before.Status.Role != pu.Status.Role || newlyDenied {
		roleChanges.WithLabelValues(pu.Namespace).Inc()
	}
	if (before.Status.Role != pu.Status.Role || newlyDenied) && r.tallyMove(before, pu, res) {
		newlyDenied = false // counted for the RoleMapping's UsersMoved Event
	} else if before.Status.Role != pu.Status.Role {
		r.eventf(pu, "Normal", rolesyncv1.ReasonRoleChanged, "Resolve", "Role changed from %s to %s: %s; in force in LiteLLM within %s of the database write (its user cache)",
			roleText(before.Status.Role), roleText(pu.Status.Role), res.Message, r.cacheTTL())
	}
	if newlyDenied {
		r.eventf(pu, "Warning", res.Reason, "Resolve", "Denied: %s", res.Message)
	}
	if sr.Drift == proxyuser.DriftCorrected {
		r.eventf(pu, "Warning", rolesyncv1.ReasonDriftCorrected, "Sync", "The database held %s; rewrote %s", proxyuser.RowText(sr.RowRole), res.RowRole())
		if sr.Competing {
			r.eventf(pu, "Warning", rolesyncv1.ReasonCompetingWriter, "Sync",
				"Row %s drifted to %s again soon after a correction: another writer (LiteLLM's own role mapping?) sets user_role; see docs/operations.md", sr.Row, proxyuser.RowText(sr.RowRole))
		}
	}
	if sr.Unmanaged != "" && conditionReason(before.Status.Conditions, rolesyncv1.ConditionDrifted) != rolesyncv1.ReasonUnmanagedRole {
		r.eventf(pu, "Warning", rolesyncv1.ReasonUnmanagedRole, "Sync", "Row %s holds %s, a role rolesync does not manage; it is left alone", sr.Row, sr.Unmanaged)
	}
	if sr.Conflict != "" && conditionReason(before.Status.Conditions, rolesyncv1.ConditionSynced) != rolesyncv1.ReasonRowConflict {
		r.eventf(pu, "Warning", rolesyncv1.ReasonRowConflict, "Sync", "ProxyUser %s, created earlier, has the same userID and writes its database row; this one is not synced", sr.Conflict)
	}
	if sr.Ambiguous != nil && conditionReason(before.Status.Conditions, rolesyncv1.ConditionSynced) != rolesyncv1.ReasonAmbiguousUser {
		r.eventf(pu, "Warning", rolesyncv1.ReasonAmbiguousUser, "Sync", "No row written: %v", sr.Ambiguous)
	}
	if sr.Drift == proxyuser.DriftReported && !apimeta.IsStatusConditionTrue(before.Status.Conditions, rolesyncv1.ConditionDrifted) {
		r.eventf(pu, "Warning", rolesyncv1.ReasonDriftDetected, "Sync", "The database holds %s, not %s (drift policy Report)", proxyuser.RowText(sr.RowRole), res.RowRole())
	}
	if sr.Err != nil && !apimeta.IsStatusConditionFalse(before.Status.Conditions, rolesyncv1.ConditionSynced) {
		r.eventf(pu, "Warning", rolesyncv1.ReasonSyncFailed, "Sync", "Could not write the database: %v", sr.Err)
	}
}

func roleText(r rolesyncv1.Role) string {
	if r == "" {
		return "none"
	}
	return string(r)
}

// finalize applies the deletionPolicy, then releases the object. While the
// database is unavailable, or other rows block the delete, the finalizer
// stays and the attempt is retried with backoff.
func (r *ProxyUserReconciler) finalize(ctx context.Context, pu *rolesyncv1.ProxyUser) error {
	if !controllerutil.ContainsFinalizer(pu, proxyuser.Finalizer) {
		return nil
	}
	policy := pu.GetDeletionPolicy()
	if r.Store != nil && policy != rolesyncv1.DeletionPolicyRetain {
		owner, err := r.olderTwin(ctx, pu)
		if err == nil && owner == "" {
			owner, err = r.rowOwner(ctx, pu)
		}
		if err != nil {
			return err
		}
		if owner == "" { // a duplicate or a conflicting user never owned the row
			if err := r.applyDeletionPolicy(ctx, pu, policy); err != nil {
				return err
			}
		}
	}
	r.forget(pu.UID)
	if err := r.patchFinalizers(ctx, pu, controllerutil.RemoveFinalizer); !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// forget drops the memory the controller keeps per user (drift checks,
// corrections, team checks) once the user is gone.
func (r *ProxyUserReconciler) forget(uid types.UID) {
	r.checked.Delete(uid)
	r.corrected.Delete(uid)
	r.teamsChecked.Delete(uid)
}

func (r *ProxyUserReconciler) patchFinalizers(ctx context.Context, pu *rolesyncv1.ProxyUser, change func(client.Object, string) bool) error {
	patch := client.MergeFromWithOptions(pu.DeepCopy(), client.MergeFromWithOptimisticLock{})
	change(pu, proxyuser.Finalizer)
	if err := r.Patch(ctx, pu, patch); err != nil {
		return fmt.Errorf("patch finalizers of proxy user %s/%s: %w", pu.Namespace, pu.Name, err)
	}
	return nil
}

// mappingsLoaded reports whether the Registry has caught up with the
// namespace's RoleMappings.
func (r *ProxyUserReconciler) mappingsLoaded(ctx context.Context, namespace string) (bool, error) {
	return proxyuser.MappingsLoaded(ctx, r.Client, r.Registry, namespace)
}

// olderTwin returns the name of the ProxyUser that owns pu's identity when
// it is another, older one, else "".
func (r *ProxyUserReconciler) olderTwin(ctx context.Context, pu *rolesyncv1.ProxyUser) (string, error) {
	owner, err := proxyuser.OwnerOf(ctx, r.Client, pu.Namespace, pu.Spec.Issuer, pu.Spec.UserID)
	if err != nil || owner == nil || owner.UID == pu.UID {
		return "", err
	}
	return owner.Name, nil
}

// DefaultLiteLLMCacheTTL is LiteLLM's default user_api_key_cache_ttl.
const DefaultLiteLLMCacheTTL = 60 * time.Second

// DefaultResyncPeriod is how often each user's row is compared with its
// status when no period is set (--resync-period's default).
const DefaultResyncPeriod = 10 * time.Minute

func (r *ProxyUserReconciler) cacheTTL() time.Duration {
	if r.LiteLLMCacheTTL <= 0 {
		return DefaultLiteLLMCacheTTL
	}
	return r.LiteLLMCacheTTL
}

func (r *ProxyUserReconciler) resyncPeriod() time.Duration {
	return resyncPeriod(r.ResyncPeriod)
}

// resyncPeriod is period, or DefaultResyncPeriod when it is not set.
func resyncPeriod(period time.Duration) time.Duration {
	if period <= 0 {
		return DefaultResyncPeriod
	}
	return period
}

func (r *ProxyUserReconciler) driftPolicy() DriftPolicy {
	if r.DriftPolicy == "" {
		return DriftEnforce
	}
	return r.DriftPolicy
}

// usersOfNamespace maps an engine change to every ProxyUser of its namespace.
func (r *ProxyUserReconciler) usersOfNamespace(ctx context.Context, namespace string) []reconcile.Request {
	if r.cached != nil { // the cache's own objects, not a copy of each
		objs, err := r.cached.ByIndex(toolscache.NamespaceIndex, namespace)
		if err == nil {
			reqs := make([]reconcile.Request, 0, len(objs))
			for _, o := range objs {
				if pu, ok := o.(*rolesyncv1.ProxyUser); ok {
					reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pu.Namespace, Name: pu.Name}})
				}
			}
			return reqs
		}
	}
	var list rolesyncv1.ProxyUserList
	if err := r.List(ctx, &list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list proxy users to re-evaluate", "namespace", namespace)
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		reqs[i].Namespace, reqs[i].Name = list.Items[i].Namespace, list.Items[i].Name
	}
	return reqs
}

// twinsOf maps a deleted ProxyUser to the others with its userID, in any
// namespace and issuer (its duplicates and the users its row conflicted
// with): the next oldest becomes the owner.
func (r *ProxyUserReconciler) twinsOf(ctx context.Context, obj client.Object) []reconcile.Request {
	pu, ok := obj.(*rolesyncv1.ProxyUser)
	if !ok {
		return nil
	}
	twins, err := proxyuser.IdentityMatches(ctx, r, proxyuser.UserIDIndex, pu.Spec.UserID)
	if err != nil {
		log.FromContext(ctx).Error(err, "Failed to list proxy users with the same userID", "userID", pu.Spec.UserID)
		return nil
	}
	var reqs []reconcile.Request
	for _, twin := range twins {
		if twin.UID != pu.UID {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(twin)})
		}
	}
	return reqs
}

// rowOwner returns "namespace/name" of the ProxyUser that writes pu's
// database row when it is another one: LiteLLM keys rows by user_id alone, so
// ProxyUsers with one userID in different namespaces or issuers would write
// one row. The oldest owns it; the others report RowConflict instead of the
// last writer winning. (Same-namespace same-issuer twins are DuplicateUser.)
func (r *ProxyUserReconciler) rowOwner(ctx context.Context, pu *rolesyncv1.ProxyUser) (string, error) {
	if r.Store == nil {
		return "", nil
	}
	twins, err := proxyuser.IdentityMatches(ctx, r, proxyuser.UserIDIndex, pu.Spec.UserID)
	if err != nil {
		return "", fmt.Errorf("list proxy users with userID %s: %w", pu.Spec.UserID, err)
	}
	owner := pu
	for _, twin := range twins {
		if twin.CreatedBefore(owner) {
			owner = twin
		}
	}
	if owner.UID == pu.UID {
		return "", nil
	}
	return owner.Namespace + "/" + owner.Name, nil
}

// SetupWithManager registers the controller: spec changes (generation),
// engine changes of the namespace, and the deletion of a twin trigger a
// reconcile; status-only updates do not.
func (r *ProxyUserReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&rolesyncv1.ProxyUser{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&rolesyncv1.ProxyUser{}, handler.EnqueueRequestsFromMapFunc(r.twinsOf), builder.WithPredicates(deletesOnly())).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles),
			// Per-user backoff capped at 30s and no global token bucket: when
			// the database comes back, thousands of failed users retry within
			// seconds instead of draining at 10/s behind the default bucket.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](200*time.Millisecond, retryMaxDelay),
		}).
		Named("proxyuser")
	if r.Changes != nil {
		b = b.WatchesRawSource(r.Changes.source(r.usersOfNamespace))
	}
	if r.sweep != nil {
		b = b.WatchesRawSource(r.sweep.source())
	}
	return b.Complete(r)
}

func deletesOnly() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
	}
}

// conditionReason is a condition's reason ("" when absent): apimeta has
// getters for a condition's status, none for its reason.
func conditionReason(conds []metav1.Condition, t string) string {
	if c := apimeta.FindStatusCondition(conds, t); c != nil {
		return c.Reason
	}
	return ""
}
