package controllers

import (
	"context"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxydb"
)

// BatchStore reads many users' rows in one statement (*proxydb.DB).
type BatchStore interface {
	FindMany(ctx context.Context, lookups []proxydb.Lookup) ([]proxydb.Found, error)
}

var (
	driftChecked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rolesync_drift_checked_users_total",
		Help: "Users whose LiteLLM rows the drift sweep read (each user once per --resync-period, in batches spread over it).",
	})
	driftBatches = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rolesync_drift_sweep_batches_total",
		Help: "Statements the drift sweep read rows with (one per batch of up to 1,000 users).",
	})
)

func init() { metrics.Registry.MustRegister(driftChecked, driftBatches) }

// sweepSlots is how many parts the users are split into over a resync
// period: one part is read each period/sweepSlots, so the reads are spread
// over the period (100,000 users, 10 minutes: about 1,700 users every 10 s).
const sweepSlots = 60

// SweepSlotIndex indexes ProxyUsers by their drift sweep slot (a hash of
// the UID), so each tick lists one slot's users from the cache.
const SweepSlotIndex = "rolesync.dev/sweep-slot"

// prefetchTTL is how long a row the sweep read stands for a reconcile; an
// older one (the queue was long) is read again by Find.
const prefetchTTL = 30 * time.Second

// prefetch is a row the sweep read for one user's next reconcile.
type prefetch struct {
	found proxydb.Found
	at    time.Time
	// failed: the batch read failed; the reconcile reads the row itself
	// (and reports the failure in status as any failed read).
	failed bool
}

// driftSweep replaces a read per user per resync period with a read per
// batch: every period/sweepSlots it takes the users of the next slot (by a
// hash of their UID, so each user is looked at once per period, and the
// reads are spread evenly), reads all their rows in one statement per
// 1,000 users, leaves each row for the user's reconcile and queues it. The
// reconcile compares exactly as a Find would (sync, syncTeams): the sweep
// decides nothing. It runs as a source of the ProxyUser controller, so only
// on the leader.
type driftSweep struct {
	store  BatchStore
	period time.Duration
	reader client.Reader    // the cache
	rows   sync.Map         // types.UID -> prefetch
	now    func() time.Time // time.Now when nil
}

func (s *driftSweep) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// slotOf is the sweep slot of a user.
func slotOf(uid types.UID) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(uid))
	return int(h.Sum32() % sweepSlots)
}

// take returns (and forgets) the row the sweep read for uid, if it is fresh.
func (s *driftSweep) take(uid types.UID) (prefetch, bool) {
	if s == nil {
		return prefetch{}, false
	}
	v, ok := s.rows.LoadAndDelete(uid)
	if !ok {
		return prefetch{}, false
	}
	p := v.(prefetch)
	if s.clock().Sub(p.at) > prefetchTTL {
		p = prefetch{failed: true} // stale: the reconcile reads the row itself
	}
	return p, true
}

func (s *driftSweep) source() source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		go s.run(ctx, q)
		return nil
	})
}

func (s *driftSweep) run(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	t := time.NewTicker(max(s.period/sweepSlots, time.Millisecond))
	defer t.Stop()
	for slot := 0; ; slot = (slot + 1) % sweepSlots {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.sweep(ctx, slot, q)
	}
}

// sweep reads the rows of the users of one slot and queues them.
func (s *driftSweep) sweep(ctx context.Context, slot int, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	var list rolesyncv1.ProxyUserList
	if err := s.reader.List(ctx, &list, client.MatchingFields{SweepSlotIndex: strconv.Itoa(slot)}, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Drift sweep could not list its slot's users", "slot", slot)
		return
	}
	// Rows nobody took within prefetchTTL are dropped, and a user whose
	// row is still waiting (its reconcile queued behind a mass move) is
	// not read again: the rows held stay bounded by the slots of one TTL,
	// however long the queue.
	now := s.clock()
	s.rows.Range(func(uid, v any) bool {
		if now.Sub(v.(prefetch).at) > prefetchTTL {
			s.rows.Delete(uid)
		}
		return true
	})
	due := make([]*rolesyncv1.ProxyUser, 0, len(list.Items))
	for i := range list.Items {
		if _, waiting := s.rows.Load(list.Items[i].UID); !waiting && list.Items[i].DeletionTimestamp.IsZero() {
			due = append(due, &list.Items[i])
		}
	}
	for start := 0; start < len(due); start += proxydb.MaxLookups {
		batch := due[start:min(len(due), start+proxydb.MaxLookups)]
		lookups := make([]proxydb.Lookup, len(batch))
		for i, pu := range batch {
			lookups[i] = proxydb.Lookup{UserID: pu.Spec.UserID, Email: pu.Spec.Email}
		}
		found, err := s.store.FindMany(ctx, lookups)
		if err != nil {
			log.FromContext(ctx).Error(err, "Drift sweep could not read rows; each user reads its own", "users", len(batch))
		} else {
			driftBatches.Inc()
			driftChecked.Add(float64(len(batch)))
		}
		now := s.clock()
		for i, pu := range batch {
			p := prefetch{at: now, failed: err != nil}
			if err == nil {
				p.found = found[i]
			}
			s.rows.Store(pu.UID, p)
			addBackground(q, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(pu)})
		}
	}
}
