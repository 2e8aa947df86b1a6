package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/priority"
)

// TestStatusWritesYieldToALoginInFlight: while a login is being answered
// every ProxyUser status write looks at the login gate right before it
// goes to the apiserver, and waits (at most priority.MaxWait, so the users
// still settle); with no login in flight no write waits.
func TestStatusWritesYieldToALoginInFlight(t *testing.T) {
	needSuite(t)
	url, err := pgServer.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t)
	var gate priority.Gate
	// One write in flight at a time: each write queues for the slot, and
	// must still look at the gate once it has it.
	startOperator(t, ns, Options{Store: openDB(t, url), MaxConcurrentReconciles: 1, Priority: &gate, ResyncPeriod: time.Hour})
	createMapping(t, ns, keycloakMapping, true)

	const n = 5
	seedRows(t, url, ns, "w", 2*n, 2)
	loginDone := gate.Enter() // a login that stays in flight
	before := testutil.ToFloat64(priorityWaits)
	createMany(t, n, func(i int) *rolesyncv1.ProxyUser {
		return newUser(ns, fmt.Sprintf("w%02d", i), keycloakClaims("team-d"), true)
	})
	waitSettled(t, ns, n, rolesyncv1.RoleInternalUser)
	if got := testutil.ToFloat64(priorityWaits) - before; got < n {
		t.Fatalf("%v status writes waited for the login in flight, want at least %d (one per user)", got, n)
	}

	loginDone()
	before = testutil.ToFloat64(priorityWaits)
	createMany(t, n, func(i int) *rolesyncv1.ProxyUser {
		return newUser(ns, fmt.Sprintf("w%02d", n+i), keycloakClaims("team-d"), true)
	})
	waitSettled(t, ns, 2*n, rolesyncv1.RoleInternalUser)
	if got := testutil.ToFloat64(priorityWaits) - before; got != 0 {
		t.Fatalf("%v status writes waited with no login in flight", got)
	}
}
