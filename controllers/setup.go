package controllers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/adaptive"
	"github.com/rolesync/rolesync/internal/emailaddr"
	"github.com/rolesync/rolesync/internal/priority"
	"github.com/rolesync/rolesync/internal/proxydb"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/review"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// Options configure the controllers as the manager's flags say.
type Options struct {
	// Registry is shared by the controllers and the login server.
	Registry *rolemap.Registry
	// Store is the proxy database, or nil to run without one.
	Store         UserStore
	DriftPolicy   DriftPolicy
	KeyRevocation KeyRevocation
	// Brake holds RoleMapping edits that would deny or demote too many users
	// (the zero value is off; the manager uses review.DefaultBrake).
	Brake review.Brake
	// KeepDeniedActive: --deactivate-denied=false.
	KeepDeniedActive bool
	// GroupsClaim is --scim-groups-claim: the claim the directory's groups
	// are (default proxyuser.DefaultGroupsClaim).
	GroupsClaim  string
	ResyncPeriod time.Duration
	// LiteLLMCacheTTL is LiteLLM's user cache TTL (0: DefaultLiteLLMCacheTTL).
	LiteLLMCacheTTL         time.Duration
	MaxConcurrentReconciles int
	// EventRate and EventBurst budget ProxyUser Events (0: the defaults).
	EventRate  float64
	EventBurst int
	// Priority, when set, holds ProxyUser reconciles back while logins
	// are answered (the login server shares it).
	Priority *priority.Gate
}

// StatusWriteFloor is the fewest ProxyUser status writes the adaptive bound
// keeps in flight while the apiserver queues. An overloaded apiserver
// writes no faster with more in flight, only slower for everyone else: at
// 10,000 users on two cores a mass move took 52.7, 55.4 and 53.2 s with
// floors 2, 4 and 8, while a login's p99 during it was 2.1×, 4.2× and 5.8×
// its idle p99 (docs/benchmarks.md).
const StatusWriteFloor = 2

// MovesPeriod is how often the UsersMoved Events of RoleMapping changes are
// emitted.
const MovesPeriod = 5 * time.Second

// Setup registers the field indexes and both controllers on mgr, wired as
// the manager binary runs them.
func Setup(mgr ctrl.Manager, o Options) error {
	if err := SetupIndexes(context.Background(), mgr); err != nil {
		return err
	}
	// Engine changes flow from the RoleMapping controller to the ProxyUser
	// controller after the Registry holds them, so users are never
	// re-evaluated against the engine they are leaving.
	changes := NewEngineChanges()
	moves := NewMoveTally()
	recorder := mgr.GetEventRecorder("rolesync.dev/proxyuser-controller")
	if err := (&RoleMappingReconciler{
		Client:                  mgr.GetClient(),
		Registry:                o.Registry,
		MaxConcurrentReconciles: o.MaxConcurrentReconciles,
		Changes:                 changes,
		Elected:                 mgr.Elected(),
		Brake:                   o.Brake,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up RoleMapping controller: %w", err)
	}
	var teams MembershipWriter
	if store, ok := o.Store.(proxydb.TeamBatchStore); ok {
		// Memberships are group-committed per team by a leader-only
		// Runnable: its transactions end with leadership.
		w := proxydb.NewTeamWriter(store)
		if err := mgr.Add(w); err != nil {
			return fmt.Errorf("add the team writer: %w", err)
		}
		teams = w
	}
	users := &ProxyUserReconciler{
		Client:                  mgr.GetClient(),
		Registry:                o.Registry,
		Store:                   o.Store,
		Recorder:                recorder,
		Moves:                   moves,
		DriftPolicy:             o.DriftPolicy,
		KeyRevocation:           o.KeyRevocation,
		KeepDeniedActive:        o.KeepDeniedActive,
		GroupsClaim:             o.GroupsClaim,
		ResyncPeriod:            o.ResyncPeriod,
		LiteLLMCacheTTL:         o.LiteLLMCacheTTL,
		MaxConcurrentReconciles: o.MaxConcurrentReconciles,
		Changes:                 changes,
		Teams:                   teams,
		EventRate:               o.EventRate,
		EventBurst:              o.EventBurst,
		Priority:                o.Priority,
		Writes:                  adaptive.New(min(StatusWriteFloor, max(1, o.MaxConcurrentReconciles)), max(1, o.MaxConcurrentReconciles)),
	}
	// The informer's store, read without copies: a namespace's users to
	// re-evaluate (one informer for every namespace; a shard's cache has
	// one per namespace and is listed).
	inf, err := mgr.GetCache().GetInformer(context.Background(), &rolesyncv1.ProxyUser{})
	if err != nil {
		return fmt.Errorf("get the ProxyUser informer: %w", err)
	}
	if si, ok := inf.(interface{ GetIndexer() toolscache.Indexer }); ok {
		users.cached = si.GetIndexer()
	}
	if bs, ok := o.Store.(BatchStore); ok {
		users.sweep = &driftSweep{store: bs, period: resyncPeriod(o.ResyncPeriod), reader: mgr.GetClient()}
	}
	if err := users.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up ProxyUser controller: %w", err)
	}
	if err := mgr.Add(&MoveReporter{Tally: moves, Client: mgr.GetClient(), Recorder: recorder, Period: MovesPeriod}); err != nil {
		return fmt.Errorf("add the UsersMoved reporter: %w", err)
	}
	userStats.set(mgr.GetClient(), users.cached)
	if w, ok := o.Store.(RoleWriterSource); ok {
		if err := mgr.Add(&LiteLLMWatch{Source: w, Period: resyncPeriod(o.ResyncPeriod)}); err != nil {
			return fmt.Errorf("add the LiteLLM settings watch: %w", err)
		}
	}
	return nil
}

// SetupIndexes registers the ProxyUser field indexes on the manager's cache.
func SetupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	// The identity indexes get one cluster-wide entry per user, not
	// controller-runtime's two, and hold buckets (see
	// proxyuser.IdentityBuckets).
	inf, err := mgr.GetCache().GetInformer(ctx, &rolesyncv1.ProxyUser{})
	if err != nil {
		return fmt.Errorf("get the ProxyUser informer: %w", err)
	}
	indexers := toolscache.Indexers{}
	for _, name := range proxyuser.IdentityIndexes() {
		indexers[fieldIndexName(name)] = func(obj any) ([]string, error) {
			pu, ok := obj.(*rolesyncv1.ProxyUser)
			if !ok {
				return nil, nil
			}
			keys := proxyuser.IdentityIndexValues(name, pu)
			for i, v := range keys {
				keys[i] = allNamespacesKey(v)
			}
			return keys, nil
		}
	}
	if err := inf.AddIndexers(indexers); err != nil {
		return fmt.Errorf("index proxy users by userID, email and directory identity: %w", err)
	}
	directory := map[string]func(*rolesyncv1.DirectoryUser) []string{
		proxyuser.DirectoryGroupIndex: func(d *rolesyncv1.DirectoryUser) []string {
			ids := make([]string, len(d.Groups))
			for i, g := range d.Groups {
				ids[i] = g.ID
			}
			return ids
		},
	}
	for name, values := range directory {
		if err := idx.IndexField(ctx, &rolesyncv1.ProxyUser{}, name, func(o client.Object) []string {
			if d := o.(*rolesyncv1.ProxyUser).Spec.Directory; d != nil && !d.Deleted {
				return values(d)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("index proxy users by %s: %w", name, err)
		}
	}
	if err := idx.IndexField(ctx, &rolesyncv1.DirectoryGroup{}, proxyuser.DirectoryGroupNameIndex, func(o client.Object) []string {
		return []string{emailaddr.Fold(o.(*rolesyncv1.DirectoryGroup).Spec.DisplayName)}
	}); err != nil {
		return fmt.Errorf("index directory groups by name: %w", err)
	}
	if err := idx.IndexField(ctx, &rolesyncv1.ProxyUser{}, SweepSlotIndex, func(o client.Object) []string {
		return []string{strconv.Itoa(slotOf(o.GetUID()))}
	}); err != nil {
		return fmt.Errorf("index proxy users by drift sweep slot: %w", err)
	}
	if err := idx.IndexField(ctx, &rolesyncv1.ProxyUser{}, proxyuser.SourceMappingIndex, func(o client.Object) []string {
		if s := o.(*rolesyncv1.ProxyUser).Status.Source; s != nil && s.RoleMapping != "" {
			return []string{s.RoleMapping}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index proxy users by role mapping: %w", err)
	}
	return nil
}

// fieldIndexName and allNamespacesKey are how controller-runtime's cache
// names a field index and keys its cluster-wide entries (its
// internal.FieldIndexName and KeyToNamespacedKey("", v)): an indexer added
// under that name answers client.MatchingFields lists without a namespace.
// The cluster-wide lists of the controllers', login server's and SCIM
// provider's tests fail if controller-runtime changes them.
func fieldIndexName(field string) string { return "field:" + field }

func allNamespacesKey(value string) string { return "__all_namespaces/" + value }
