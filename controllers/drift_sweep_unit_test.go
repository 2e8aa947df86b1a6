package controllers

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxydb"
)

type stubBatch struct{ users atomic.Int64 }

func (s *stubBatch) FindMany(_ context.Context, lookups []proxydb.Lookup) ([]proxydb.Found, error) {
	s.users.Add(int64(len(lookups)))
	out := make([]proxydb.Found, len(lookups))
	for i, l := range lookups {
		out[i] = proxydb.Found{Row: proxydb.Row{UserID: l.UserID, Role: "internal_user"}, Found: true}
	}
	return out, nil
}

// TestSweepHoldsRowsBoundedWhileTheQueueIsLong: while users' reconciles
// wait behind a mass move (nobody takes their rows), sweeping their slot
// again reads none of them a second time, and rows older than prefetchTTL
// are dropped: what the sweep holds never grows with the backlog.
func TestSweepHoldsRowsBoundedWhileTheQueueIsLong(t *testing.T) {
	var objs []client.Object
	for i := range 3000 {
		pu := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("u%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))}}
		pu.Spec.UserID = pu.Name
		objs = append(objs, pu)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithIndex(&rolesyncv1.ProxyUser{}, SweepSlotIndex, func(o client.Object) []string { return []string{strconv.Itoa(slotOf(o.GetUID()))} }).Build()
	store := &stubBatch{}
	clock := time.Unix(1000, 0)
	s := &driftSweep{store: store, period: time.Minute, reader: c, now: func() time.Time { return clock }}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	held := func() int {
		n := 0
		s.rows.Range(func(any, any) bool { n++; return true })
		return n
	}

	for slot := range sweepSlots { // one period: every user read once
		s.sweep(context.Background(), slot, q)
	}
	if got := store.users.Load(); got != 3000 {
		t.Fatalf("one period read %d users, want 3000", got)
	}
	// Nobody took a row (the reconciles are queued). Within the TTL, the
	// next period reads none of them again.
	for slot := range sweepSlots {
		s.sweep(context.Background(), slot, q)
	}
	if got := store.users.Load(); got != 3000 {
		t.Fatalf("users still waiting with their row were read again: %d reads", got)
	}
	// Past the TTL, a slot's sweep drops every stale row, then reads its own.
	clock = clock.Add(prefetchTTL + time.Second)
	s.sweep(context.Background(), 0, q)
	if h := held(); h > 3000/sweepSlots*2 {
		t.Fatalf("%d rows held after the TTL: stale rows are kept", h)
	}
	if p, ok := s.take(objs[0].GetUID()); ok && !p.failed && clock.Sub(p.at) > prefetchTTL {
		t.Fatal("a stale row was handed to a reconcile")
	}
}
