package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

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
	eventually(t, 120*time.Second, func() error {
		var list rolesyncv1.ProxyUserList
		if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		done := 0
		for i := range list.Items {
			if settled(rolesyncv1.RoleInternalUser)(&list.Items[i]) == nil {
				done++
			}
		}
		if done != n {
			return fmt.Errorf("%d of %d users synced", done, n)
		}
		return nil
	})

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
