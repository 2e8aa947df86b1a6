package proxydb

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrTeamWriterStopped is returned for membership changes that reach a
// TeamWriter after its context ended (leadership lost, manager stopping):
// nothing of them was written.
var ErrTeamWriterStopped = errors.New("proxydb: the team writer is stopped (leadership lost or the manager is stopping); nothing was written")

// TeamBatchStore is what a TeamWriter writes with (*DB implements it).
type TeamBatchStore interface {
	ApplyTeamBatch(ctx context.Context, team string, ops []MemberOp, keys Keys) ([]MemberResult, bool, error)
}

// TeamWriter group-commits membership changes per team: LiteLLM keeps a
// team's roster as one jsonb array, so adding 10,000 members one
// transaction each would rewrite it 10,000 times under the team's lock.
// While one batch of a team is being written, the changes of other users
// (the other reconcile workers) queue; the next batch takes them all.
//
// It is a manager Runnable that needs leader election: it writes only
// between Start and the end of Start's context, and every transaction runs
// on that context, so a replica that loses leadership stops writing (an
// open transaction is rolled back) instead of writing beside the new
// leader. Changes queued before Start wait for it.
type TeamWriter struct {
	store TeamBatchStore

	mu      sync.Mutex
	pending map[string][]*pendingMember // by team
	running map[string]bool
	ctx     context.Context // Start's; nil before Start
}

type pendingMember struct {
	op   MemberOp
	keys Keys
	done chan memberDone
}

type memberDone struct {
	res   MemberResult
	found bool
	err   error
}

// teamBatchTimeout bounds one batch's transaction.
const teamBatchTimeout = 60 * time.Second

// NewTeamWriter returns a writer of store's rosters; it writes once started.
func NewTeamWriter(store TeamBatchStore) *TeamWriter {
	return &TeamWriter{store: store, pending: map[string][]*pendingMember{}, running: map[string]bool{}}
}

// NeedLeaderElection is true: only the leader writes memberships.
func (w *TeamWriter) NeedLeaderElection() bool { return true }

// Start lets the writer write until ctx ends.
func (w *TeamWriter) Start(ctx context.Context) error {
	w.mu.Lock()
	w.ctx = ctx
	teams := make([]string, 0, len(w.pending))
	for team := range w.pending {
		if !w.running[team] {
			w.running[team] = true
			teams = append(teams, team)
		}
	}
	w.mu.Unlock()
	for _, team := range teams {
		go w.flush(ctx, team)
	}
	<-ctx.Done()
	return nil
}

// Apply queues op for team and waits for the batch that writes it. found
// is false when the team does not exist (nothing was written).
func (w *TeamWriter) Apply(ctx context.Context, team string, op MemberOp, keys Keys) (MemberResult, bool, error) {
	p := &pendingMember{op: op, keys: keys, done: make(chan memberDone, 1)}
	w.mu.Lock()
	wctx := w.ctx
	if wctx != nil && wctx.Err() != nil {
		w.mu.Unlock()
		return MemberResult{}, true, ErrTeamWriterStopped
	}
	w.pending[team] = append(w.pending[team], p)
	start := wctx != nil && !w.running[team]
	if start {
		w.running[team] = true
	}
	w.mu.Unlock()
	if start {
		go w.flush(wctx, team)
	}
	select {
	case d := <-p.done:
		return d.res, d.found, d.err
	case <-ctx.Done():
		return MemberResult{}, true, ctx.Err() // it may still be written; the next reconcile reads what is
	}
}

// flush writes the team's queued changes, batch after batch, until none
// are left or ctx ends (then the queued changes fail, unwritten). A user
// queued twice goes into the next batch (a batch holds one change per
// user); so does a change whose key mode differs.
func (w *TeamWriter) flush(ctx context.Context, team string) {
	for {
		w.mu.Lock()
		queue := w.pending[team]
		if len(queue) == 0 || ctx.Err() != nil {
			delete(w.pending, team)
			delete(w.running, team)
			w.mu.Unlock()
			for _, p := range queue {
				p.done <- memberDone{found: true, err: ErrTeamWriterStopped}
			}
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
		w.pending[team] = rest
		w.mu.Unlock()

		ops := make([]MemberOp, len(batch))
		for i, p := range batch {
			ops[i] = p.op
		}
		bctx, cancel := context.WithTimeout(ctx, teamBatchTimeout)
		results, found, err := w.store.ApplyTeamBatch(bctx, team, ops, batch[0].keys)
		cancel()
		if err != nil && ctx.Err() != nil {
			err = errors.Join(ErrTeamWriterStopped, err)
		}
		for i, p := range batch {
			d := memberDone{found: found, err: err}
			if err == nil && found {
				d.res = results[i]
			}
			p.done <- d
		}
	}
}
