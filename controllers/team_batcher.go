package controllers

import (
	"context"
	"sync"
	"time"

	"github.com/rolesync/rolesync/internal/proxydb"
)

// teamBatcher group-commits membership changes per team: LiteLLM keeps a
// team's roster as one jsonb array, so adding 10,000 members one
// transaction each would rewrite it 10,000 times under the team's lock.
// While one batch of a team is being written, the changes of other users
// (the other reconcile workers) queue; the next batch takes them all.
type teamBatcher struct {
	store TeamStore

	mu      sync.Mutex
	pending map[string][]*pendingMember // by team
	running map[string]bool
}

type pendingMember struct {
	op   proxydb.MemberOp
	keys proxydb.Keys
	done chan memberDone
}

type memberDone struct {
	res   proxydb.MemberResult
	found bool
	err   error
}

// batchTimeout bounds one batch's transaction.
const batchTimeout = 60 * time.Second

func newTeamBatcher(store TeamStore) *teamBatcher {
	return &teamBatcher{store: store, pending: map[string][]*pendingMember{}, running: map[string]bool{}}
}

// apply queues op for team and waits for the batch that writes it.
func (b *teamBatcher) apply(ctx context.Context, team string, op proxydb.MemberOp, keys proxydb.Keys) (proxydb.MemberResult, bool, error) {
	p := &pendingMember{op: op, keys: keys, done: make(chan memberDone, 1)}
	b.mu.Lock()
	b.pending[team] = append(b.pending[team], p)
	start := !b.running[team]
	b.running[team] = true
	b.mu.Unlock()
	if start {
		go b.flush(team)
	}
	select {
	case d := <-p.done:
		return d.res, d.found, d.err
	case <-ctx.Done():
		return proxydb.MemberResult{}, true, ctx.Err() // it may still be written; the next reconcile reads what is
	}
}

// flush writes the team's queued changes, batch after batch, until none
// are left. A user queued twice goes into the next batch (a batch holds
// one change per user); so does a change whose key mode differs.
func (b *teamBatcher) flush(team string) {
	for {
		b.mu.Lock()
		queue := b.pending[team]
		if len(queue) == 0 {
			delete(b.pending, team)
			delete(b.running, team)
			b.mu.Unlock()
			return
		}
		var batch, rest []*pendingMember
		seen := map[string]bool{}
		for _, p := range queue {
			if seen[p.op.RowUserID] || p.keys != queue[0].keys {
				rest = append(rest, p)
				continue
			}
			seen[p.op.RowUserID] = true
			batch = append(batch, p)
		}
		b.pending[team] = rest
		b.mu.Unlock()

		ops := make([]proxydb.MemberOp, len(batch))
		for i, p := range batch {
			ops[i] = p.op
		}
		ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
		results, found, err := b.store.ApplyTeamBatch(ctx, team, ops, batch[0].keys)
		cancel()
		for i, p := range batch {
			d := memberDone{found: found, err: err}
			if err == nil && found {
				d.res = results[i]
			}
			p.done <- d
		}
	}
}
