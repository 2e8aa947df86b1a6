package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// MoveTally counts the role changes a RoleMapping change causes (the
// user's own spec unchanged), so that one edit that moves 10,000 users
// costs one UsersMoved Event on the RoleMapping per period, not an Event
// per user competing with their status writes. Each user's status still
// says what decided its role and why.
type MoveTally struct {
	mu     sync.Mutex
	counts map[types.NamespacedName]map[string]int // RoleMapping -> "from → to" -> users
}

// NewMoveTally returns an empty tally.
func NewMoveTally() *MoveTally {
	return &MoveTally{counts: map[types.NamespacedName]map[string]int{}}
}

// Add counts one user of namespace moved from -> to because of mapping
// (the mapping that decides now, or decided before).
func (t *MoveTally) Add(namespace, mapping, from, to string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := types.NamespacedName{Namespace: namespace, Name: mapping}
	if t.counts[key] == nil {
		t.counts[key] = map[string]int{}
	}
	t.counts[key][from+" → "+to]++
}

// drain returns and forgets the counts.
func (t *MoveTally) drain() map[types.NamespacedName]map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.counts
	t.counts = map[types.NamespacedName]map[string]int{}
	return out
}

// moveNote is the Event text for one RoleMapping's moves, largest first.
func moveNote(moves map[string]int) string {
	keys := slices.SortedFunc(maps.Keys(moves), func(a, b string) int {
		if moves[a] != moves[b] {
			return moves[b] - moves[a]
		}
		return strings.Compare(a, b)
	})
	total := 0
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		total += moves[k]
		parts = append(parts, fmt.Sprintf("%d %s", moves[k], k))
	}
	return fmt.Sprintf("A RoleMapping change moved %d users: %s (each ProxyUser's status says why)", total, strings.Join(parts, ", "))
}

// MoveReporter emits the tally's UsersMoved Events every Period (leader
// only, like the controller that fills the tally).
type MoveReporter struct {
	Tally    *MoveTally
	Client   client.Reader
	Recorder events.EventRecorder
	Period   time.Duration
}

// NeedLeaderElection is true: the tally is filled by the leader's controller.
func (m *MoveReporter) NeedLeaderElection() bool { return true }

// Start reports until ctx ends. Moves tallied in the last period before
// the end (leadership lost, manager stopping) are not reported: the
// reporter writes nothing once ctx is done, and each ProxyUser's status
// already says what moved it.
func (m *MoveReporter) Start(ctx context.Context) error {
	tick := time.NewTicker(m.Period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			m.report(ctx)
		}
	}
}

func (m *MoveReporter) report(ctx context.Context) {
	for key, moves := range m.Tally.drain() {
		rm := &rolesyncv1.RoleMapping{}
		err := m.Client.Get(ctx, key, rm)
		switch {
		case err == nil:
			m.Recorder.Eventf(rm, nil, "Normal", rolesyncv1.ReasonUsersMoved, "Resolve", "%s", moveNote(moves))
		case apierrors.IsNotFound(err): // a deleted mapping: say it on its namespace
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: key.Namespace}}
			m.Recorder.Eventf(ns, nil, "Normal", rolesyncv1.ReasonUsersMoved, "Resolve", "RoleMapping %s was deleted. %s", key.Name, moveNote(moves))
		}
	}
}
