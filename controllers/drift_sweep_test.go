package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// TestDriftChecksAreBatchedAndSpread: once users are synced, their rows
// are read by the drift sweep, many users per statement, in slots spread
// over the resync period (never one read per user, never all at once); a
// drifted row is still corrected within a period; and a restarted
// operator's first pass over synced users reads no row and writes nothing
// (no burst at start: each user is checked at its slot).
func TestDriftChecksAreBatchedAndSpread(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	url, err := pgServer.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t)
	const n, period = 300, 3 * time.Second
	db := openDB(t, url)
	store := &countingStore{UserStore: db}
	stop := startOperator(t, ns, Options{Store: store, ResyncPeriod: period, MaxConcurrentReconciles: 8})
	createMapping(t, ns, keycloakMapping, true)
	seedRows(t, url, ns, "d", n, 5)
	createMany(t, n, func(i int) *rolesyncv1.ProxyUser {
		return newUser(ns, fmt.Sprintf("d%05d", i), keycloakClaims("team-d"), true)
	})
	waitSettled(t, ns, n, rolesyncv1.RoleInternalUser)

	// Two periods of synced users: batches only.
	finds, writes := store.finds.Load(), store.writes.Load()
	from := len(store.batchReads())
	time.Sleep(2 * period)
	batches := store.batchReads()[from:]
	users := 0
	for _, b := range batches {
		users += b.users
		if b.users > n/4 {
			t.Errorf("one batch read %d of %d users: the reads are not spread over the period", b.users, n)
		}
	}
	if f := store.finds.Load() - finds; f != 0 {
		t.Errorf("%d single-row reads of synced users: drift checks are not batched", f)
	}
	if w := store.writes.Load() - writes; w != 0 {
		t.Errorf("%d writes for unchanged users", w)
	}
	// Each user once per period (the window holds two, give or take a slot).
	if users < n*3/2 || users > n*5/2 {
		t.Errorf("%d users checked in two periods of %d users (%d batches)", users, n, len(batches))
	}
	if len(batches) < 2*5 {
		t.Errorf("only %d batches in two periods: the sweep is not spread", len(batches))
	}

	// A drifted row is corrected by the sweep within a period.
	drifted := fmt.Sprintf("%s-d%05d", ns, 7)
	setRowRole(t, url, drifted, "proxy_admin")
	waitRow(t, db, drifted, "internal_user")

	// A restart: the new operator's first pass reads and writes nothing.
	stop()
	versions := userVersions(t, ns)
	finds, writes = store.finds.Load(), store.writes.Load()
	startOperator(t, ns, Options{Store: store, ResyncPeriod: time.Hour, MaxConcurrentReconciles: 8})
	time.Sleep(5 * time.Second) // the first pass over 300 users takes well under a second
	if f, w := store.finds.Load()-finds, store.writes.Load()-writes; f != 0 || w != 0 {
		t.Errorf("a restart over synced users read %d rows one by one and wrote %d", f, w)
	}
	for name, rv := range userVersions(t, ns) {
		if versions[name] != rv {
			t.Errorf("%s was written at restart", name)
		}
	}
}

// countSettled counts the users of ns settled on role.
func countSettled(t *testing.T, ns string, role rolesyncv1.Role) int {
	t.Helper()
	var list rolesyncv1.ProxyUserList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	done := 0
	for i := range list.Items {
		if settled(role)(&list.Items[i]) == nil {
			done++
		}
	}
	return done
}

// waitSettled waits until all n users of ns are settled on role.
func waitSettled(t *testing.T, ns string, n int, role rolesyncv1.Role) {
	t.Helper()
	eventually(t, 180*time.Second, func() error {
		if done := countSettled(t, ns, role); done != n {
			return fmt.Errorf("%d of %d users settled on %s", done, n, role)
		}
		return nil
	})
}

func userVersions(t *testing.T, ns string) map[string]string {
	t.Helper()
	var list rolesyncv1.ProxyUserList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, pu := range list.Items {
		out[pu.Name] = pu.ResourceVersion
	}
	return out
}

// TestSpecChangeIsNotQueuedBehindAMassMove: a mapping edit queues every
// user of the namespace at low priority; a user whose spec changes
// meanwhile (a login's write) is reconciled next, not after the thousands
// queued before it. One worker, so the queue's order is all that decides.
func TestSpecChangeIsNotQueuedBehindAMassMove(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	url, err := pgServer.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t)
	const n = 400
	startOperator(t, ns, Options{Store: openDB(t, url), MaxConcurrentReconciles: 1})
	rm := createMapping(t, ns, keycloakMapping, true)
	seedRows(t, url, ns, "q", n, 5)
	createMany(t, n, func(i int) *rolesyncv1.ProxyUser {
		return newUser(ns, fmt.Sprintf("q%05d", i), keycloakClaims("team-q"), true)
	})
	moved := func(role rolesyncv1.Role) int { return countSettled(t, ns, role) }
	waitSettled(t, ns, n, rolesyncv1.RoleInternalUser)

	// The edit moves every user; right after it, one user's claims change.
	patch := client.MergeFrom(rm.DeepCopy())
	rm.Spec.Rules[2].Role = rolesyncv1.RoleProxyAdminViewer
	if err := k8sClient.Patch(ctx, rm, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error { // the mass move has started
		if done := moved(rolesyncv1.RoleProxyAdminViewer); done == 0 {
			return fmt.Errorf("no user moved yet")
		}
		return nil
	})
	// A user the move is done with: its spec change queues it again, behind
	// every user still waiting, were the queue first-in first-out.
	var list rolesyncv1.ProxyUserList
	if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var cur *rolesyncv1.ProxyUser
	for i := range list.Items {
		if settled(rolesyncv1.RoleProxyAdminViewer)(&list.Items[i]) == nil {
			cur = &list.Items[i]
			break
		}
	}
	if cur == nil {
		t.Fatal("no moved user found")
	}
	key := client.ObjectKeyFromObject(cur)
	up := client.MergeFrom(cur.DeepCopy())
	raw, _ := json.Marshal(keycloakClaims("litellm-admin"))
	cur.Spec.Claims = &apiextensionsv1.JSON{Raw: raw}
	if err := k8sClient.Patch(ctx, cur, up); err != nil {
		t.Fatal(err)
	}
	waitUser(t, key, 60*time.Second, settled(rolesyncv1.RoleProxyAdmin))
	if done := moved(rolesyncv1.RoleProxyAdminViewer); done > n/2 {
		t.Fatalf("the changed user was reconciled once %d of %d users had moved: it waited behind the mass move", done, n)
	}
}
