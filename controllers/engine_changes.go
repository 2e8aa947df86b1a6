package controllers

import (
	"context"
	"sync"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// EngineChanges carries the namespaces whose engine changed from the
// RoleMapping controller to the ProxyUser controller. Notify never blocks:
// namespaces wait in a set until the ProxyUser controller takes them, so a
// replica that is not the leader (where the ProxyUser controller does not
// run, but the RoleMapping controller keeps the login server's engine
// current) never stalls, and a burst of edits in one namespace costs one
// re-evaluation of its users.
type EngineChanges struct {
	mu      sync.Mutex
	pending map[string]struct{}
	signal  chan struct{}
}

// NewEngineChanges returns an empty feed.
func NewEngineChanges() *EngineChanges {
	return &EngineChanges{pending: map[string]struct{}{}, signal: make(chan struct{}, 1)}
}

// Notify records that the engine of namespace changed.
func (c *EngineChanges) Notify(namespace string) {
	c.mu.Lock()
	c.pending[namespace] = struct{}{}
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default: // a signal is already pending: it covers this namespace too
	}
}

func (c *EngineChanges) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.pending))
	for ns := range c.pending {
		out = append(out, ns)
	}
	clear(c.pending)
	return out
}

// source enqueues, for every changed namespace, the requests users returns.
func (c *EngineChanges) source(users func(context.Context, string) []reconcile.Request) source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-c.signal:
					for _, ns := range c.take() {
						for _, req := range users(ctx, ns) {
							addBackground(q, req)
						}
					}
				}
			}
		}()
		return nil
	})
}

// addBackground queues work no person waits for (a namespace's users after
// a mapping edit, the drift sweep) below the default priority: a user
// whose spec a login just wrote is reconciled before the thousands a mass
// move queued (controller-runtime's priority queue; a plain queue just
// adds).
func addBackground(q workqueue.TypedRateLimitingInterface[reconcile.Request], req reconcile.Request) {
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(handler.LowPriority)}, req)
		return
	}
	q.Add(req)
}
