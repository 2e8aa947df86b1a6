package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxydb"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/testing/pgtest"
)

const keycloakMapping = `metadata: {name: keycloak}
spec:
  claim: resource_access.litellm.roles
  rules:
  - {equals: litellm-admin, role: proxy_admin}
  - {equals: litellm-auditor, role: proxy_admin_viewer}
  - {glob: "team-*", role: internal_user}
  onNoMatch: Default
  defaultRole: internal_user_viewer
`

const strictMapping = `metadata: {name: strict}
spec:
  claim: groups
  rules:
  - {equals: platform, role: internal_user}
  onNoMatch: Deny
`

// createMapping creates a RoleMapping; own marks it for the test's own manager.
func createMapping(t testing.TB, ns, doc string, own bool) *rolesyncv1.RoleMapping {
	t.Helper()
	rm := roleMapping(t, ns, doc)
	if own {
		rm.Labels = map[string]string{ownManagerLabel: "true"}
	}
	if err := k8sClient.Create(context.Background(), rm); err != nil {
		t.Fatalf("create role mapping: %v", err)
	}
	return rm
}

// newUser returns a ProxyUser whose userID is unique to the namespace (the
// suite's tests share one database).
func newUser(ns, name string, claims map[string]any, own bool) *rolesyncv1.ProxyUser {
	pu := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	pu.Spec.UserID = ns + "-" + name
	pu.Spec.Email = name + "@" + ns + ".example.com" // unique: LiteLLM binds rows by email too
	if claims != nil {
		raw, _ := json.Marshal(claims)
		pu.Spec.Claims = &apiextensionsv1.JSON{Raw: raw}
	}
	if own {
		pu.Labels = map[string]string{ownManagerLabel: "true"}
	}
	return pu
}

func createUser(t *testing.T, pu *rolesyncv1.ProxyUser) *rolesyncv1.ProxyUser {
	t.Helper()
	if err := k8sClient.Create(context.Background(), pu); err != nil {
		t.Fatalf("create proxy user: %v", err)
	}
	return pu
}

func keycloakClaims(roles ...string) map[string]any {
	rs := make([]any, len(roles))
	for i, r := range roles {
		rs[i] = r
	}
	return map[string]any{"resource_access": map[string]any{"litellm": map[string]any{"roles": rs}}}
}

// waitUser waits until the ProxyUser satisfies check.
func waitUser(t *testing.T, key client.ObjectKey, timeout time.Duration, check func(*rolesyncv1.ProxyUser) error) *rolesyncv1.ProxyUser {
	t.Helper()
	pu := &rolesyncv1.ProxyUser{}
	eventually(t, timeout, func() error {
		if err := k8sClient.Get(context.Background(), key, pu); err != nil {
			return err
		}
		return check(pu)
	})
	return pu
}

// settled checks the user is fully reconciled with role, synced to the database.
func settled(role rolesyncv1.Role) func(*rolesyncv1.ProxyUser) error {
	return func(pu *rolesyncv1.ProxyUser) error {
		if pu.Status.Role != role || pu.Status.SyncedRole != role {
			return fmt.Errorf("role %q synced %q, want %q", pu.Status.Role, pu.Status.SyncedRole, role)
		}
		if pu.Status.ObservedGeneration != pu.Generation {
			return fmt.Errorf("observedGeneration %d of %d", pu.Status.ObservedGeneration, pu.Generation)
		}
		return conditionIs(pu, rolesyncv1.ConditionSynced, metav1.ConditionTrue, rolesyncv1.ReasonSynced)
	}
}

func conditionIs(pu *rolesyncv1.ProxyUser, typ string, status metav1.ConditionStatus, reason string) error {
	c := apimeta.FindStatusCondition(pu.Status.Conditions, typ)
	if c == nil || c.Status != status || c.Reason != reason {
		return fmt.Errorf("condition %s is %+v, want %s/%s", typ, c, status, reason)
	}
	return nil
}

// dbRole returns the role of the row LiteLLM would use for userID.
func dbRole(t *testing.T, db *proxydb.DB, userID string) (string, bool) {
	t.Helper()
	row, found, err := db.Find(context.Background(), userID, "")
	if err != nil {
		t.Fatal(err)
	}
	return row.Role, found
}

// sqlExec runs a statement on the database at url, as LiteLLM or an admin
// would change it behind rolesync's back.
func sqlExec(t testing.TB, url, sql string, args ...any) {
	t.Helper()
	withConn(t, url, func(ctx context.Context, c *pgx.Conn) error {
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		return nil
	})
}

// setRowRole sets user_role of the row whose user_id is userID.
func setRowRole(t testing.TB, url, userID, role string) {
	t.Helper()
	sqlExec(t, url, `UPDATE "LiteLLM_UserTable" SET user_role = $2 WHERE user_id = $1`, userID, role)
}

func waitRow(t *testing.T, db *proxydb.DB, userID, role string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		got, found, err := db.Find(context.Background(), userID, "")
		if err != nil {
			return err
		}
		if !found || got.Role != role {
			return fmt.Errorf("row of %s holds %q (found %v), want %q", userID, got.Role, found, role)
		}
		return nil
	})
}

// waitEvent waits for an Event with reason about the object whose note contains text.
func waitEvent(t *testing.T, obj client.Object, reason, text string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(context.Background(), &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == obj.GetName() && e.Reason == reason && strings.Contains(e.Note, text) {
				return nil
			}
		}
		return fmt.Errorf("no %s Event about %s containing %q among %d events", reason, obj.GetName(), text, len(list.Items))
	})
}

// eventsAbout counts the Events with reason about obj.
func eventsAbout(t *testing.T, obj client.Object, reason string) int {
	t.Helper()
	var list eventsv1.EventList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(obj.GetNamespace())); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Name == obj.GetName() && e.Reason == reason {
			n++
		}
	}
	return n
}

func TestProxyUserResolvedSyncedAndExplained(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	createMapping(t, ns, keycloakMapping, false)
	pu := createUser(t, signedUp(t, suiteDBURL, newUser(ns, "alice", keycloakClaims("team-a", "litellm-admin"), false)))

	got := waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleProxyAdmin))
	src := got.Status.Source
	if src == nil || src.Type != rolesyncv1.SourceRoleMapping || src.RoleMapping != "keycloak" || src.Rule == nil || *src.Rule != 0 ||
		src.Claim != "resource_access.litellm.roles" || src.Value != "litellm-admin" {
		t.Fatalf("source %+v", src)
	}
	if src.Description != "keycloak#0 resource_access.litellm.roles=litellm-admin" {
		t.Fatalf("description %q", src.Description)
	}
	for _, c := range []struct{ typ, reason string }{
		{rolesyncv1.ConditionReady, rolesyncv1.ReasonResolved},
		{rolesyncv1.ConditionDenied, rolesyncv1.ReasonAllowed},
		{rolesyncv1.ConditionDrifted, rolesyncv1.ReasonNoDrift},
	} {
		want := metav1.ConditionTrue
		if c.typ != rolesyncv1.ConditionReady {
			want = metav1.ConditionFalse
		}
		if err := conditionIs(got, c.typ, want, c.reason); err != nil {
			t.Error(err)
		}
	}
	if !controllerutil.ContainsFinalizer(got, proxyuser.Finalizer) {
		t.Error("no finalizer")
	}
	if got.Status.LastSyncTime == nil {
		t.Error("no lastSyncTime")
	}
	if role, _ := dbRole(t, suiteDB, pu.Spec.UserID); role != "proxy_admin" {
		t.Fatalf("row role %q", role)
	}
	waitEvent(t, pu, rolesyncv1.ReasonRoleChanged, "from none to proxy_admin")
	// The mapping counts the user it decides.
	eventually(t, 30*time.Second, func() error {
		rm := &rolesyncv1.RoleMapping{}
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "keycloak"}, rm); err != nil {
			return err
		}
		if rm.Status.Users != 1 {
			return fmt.Errorf("status.users %d", rm.Status.Users)
		}
		return nil
	})
}

func TestRoleMappingEditMovesEveryExistingUser(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	rm := createMapping(t, ns, keycloakMapping, false)
	const n = 20
	users := make([]*rolesyncv1.ProxyUser, n)
	for i := range users {
		users[i] = createUser(t, signedUp(t, suiteDBURL, newUser(ns, fmt.Sprintf("u%02d", i), keycloakClaims("team-x"), false)))
	}
	for _, pu := range users {
		waitUser(t, client.ObjectKeyFromObject(pu), 60*time.Second, settled(rolesyncv1.RoleInternalUser))
	}
	generations := map[string]int64{}
	for _, pu := range users {
		generations[pu.Name] = pu.Generation
	}

	// Promote the team-* rule: no login, no ProxyUser edit.
	patch := client.MergeFrom(rm.DeepCopy())
	rm.Spec.Rules[2].Role = rolesyncv1.RoleProxyAdminViewer
	if err := k8sClient.Patch(context.Background(), rm, patch); err != nil {
		t.Fatal(err)
	}
	for _, pu := range users {
		got := waitUser(t, client.ObjectKeyFromObject(pu), 60*time.Second, settled(rolesyncv1.RoleProxyAdminViewer))
		if got.Generation != generations[pu.Name] {
			t.Fatalf("%s: the spec was rewritten (generation %d -> %d)", pu.Name, generations[pu.Name], got.Generation)
		}
		waitRow(t, suiteDB, pu.Spec.UserID, "proxy_admin_viewer")
	}
	// One summary Event on the mapping, not one Event per user.
	waitEvent(t, rm, rolesyncv1.ReasonUsersMoved, "internal_user → proxy_admin_viewer")
	if n := eventsAbout(t, users[0], rolesyncv1.ReasonRoleChanged); n != 1 { // the first resolution only
		t.Fatalf("%d RoleChanged Events for %s, want 1 (its first resolution; the mapping edit is in UsersMoved)", n, users[0].Name)
	}

	// Deleting the only mapping denies everyone: rows fall to the lowest role.
	if err := k8sClient.Delete(context.Background(), rm); err != nil {
		t.Fatal(err)
	}
	for _, pu := range users {
		got := waitUser(t, client.ObjectKeyFromObject(pu), 60*time.Second, func(pu *rolesyncv1.ProxyUser) error {
			return conditionIs(pu, rolesyncv1.ConditionDenied, metav1.ConditionTrue, rolesyncv1.ReasonNoRoleMapping)
		})
		if got.Status.Role != "" || got.Status.Source != nil {
			t.Fatalf("denied user keeps role %q source %+v", got.Status.Role, got.Status.Source)
		}
		waitRow(t, suiteDB, pu.Spec.UserID, "internal_user_viewer")
	}
}

func TestRoleOverrideSetAndCleared(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	createMapping(t, ns, `metadata: {name: capped}
spec:
  claim: resource_access.litellm.roles
  rules:
  - {glob: "team-*", role: internal_user}
  maxRole: internal_user
`, false)
	pu := createUser(t, signedUp(t, suiteDBURL, newUser(ns, "bob", keycloakClaims("team-b"), false)))
	waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleInternalUser))

	// An admin's pin may exceed the mapping's ceiling.
	patch := client.MergeFrom(pu.DeepCopy())
	pu.Spec.RoleOverride = ptr.To(rolesyncv1.RoleProxyAdmin)
	if err := k8sClient.Patch(context.Background(), pu, patch); err != nil {
		t.Fatal(err)
	}
	got := waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleProxyAdmin))
	if got.Status.Source == nil || got.Status.Source.Type != rolesyncv1.SourceOverride || got.Status.Source.Description != "override" {
		t.Fatalf("source %+v", got.Status.Source)
	}
	if err := conditionIs(got, rolesyncv1.ConditionReady, metav1.ConditionTrue, rolesyncv1.ReasonOverride); err != nil {
		t.Fatal(err)
	}
	waitRow(t, suiteDB, pu.Spec.UserID, "proxy_admin")

	patch = client.MergeFrom(got.DeepCopy())
	got.Spec.RoleOverride = nil
	if err := k8sClient.Patch(context.Background(), got, patch); err != nil {
		t.Fatal(err)
	}
	got = waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleInternalUser))
	if got.Status.Source == nil || got.Status.Source.Type != rolesyncv1.SourceRoleMapping {
		t.Fatalf("source after clearing the override %+v", got.Status.Source)
	}
	waitRow(t, suiteDB, pu.Spec.UserID, "internal_user")
}

func TestDeniedUserGetsNoRowAndAnExistingRowIsDowngraded(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	createMapping(t, ns, strictMapping, false)

	stranger := createUser(t, newUser(ns, "stranger", map[string]any{"groups": []any{"sales"}}, false))
	got := waitUser(t, client.ObjectKeyFromObject(stranger), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		return conditionIs(pu, rolesyncv1.ConditionDenied, metav1.ConditionTrue, rolesyncv1.ReasonNoMatch)
	})
	if got.Status.Role != "" {
		t.Fatalf("denied user has role %q", got.Status.Role)
	}
	waitEvent(t, stranger, rolesyncv1.ReasonNoMatch, "strict denies")
	if _, found := dbRole(t, suiteDB, stranger.Spec.UserID); found {
		t.Fatal("a row was created for a denied user")
	}

	// A row the proxy already had (say from before rolesync) loses its privilege.
	former := newUser(ns, "former", map[string]any{"groups": []any{"sales"}}, false)
	sqlExec(t, suiteDBURL, `INSERT INTO "LiteLLM_UserTable" (user_id, sso_user_id, user_role) VALUES ($1, $1, 'proxy_admin')`, former.Spec.UserID)
	createUser(t, former)
	waitRow(t, suiteDB, former.Spec.UserID, "internal_user_viewer")
}

func TestDuplicateUserIsNeverSynced(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	url, err := pgServer.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t, url)
	store := &countingStore{UserStore: db}
	startOperator(t, ns, Options{Store: store, ResyncPeriod: 500 * time.Millisecond})
	createMapping(t, ns, keycloakMapping, true)
	first := createUser(t, signedUp(t, url, newUser(ns, "carol", keycloakClaims("team-c"), true)))
	waitUser(t, client.ObjectKeyFromObject(first), 30*time.Second, settled(rolesyncv1.RoleInternalUser))

	twin := newUser(ns, "carol-again", keycloakClaims("litellm-admin"), true)
	twin.Spec.UserID = first.Spec.UserID
	twin.Spec.RoleOverride = ptr.To(rolesyncv1.RoleProxyAdmin)
	createUser(t, twin)
	got := waitUser(t, client.ObjectKeyFromObject(twin), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		return conditionIs(pu, rolesyncv1.ConditionReady, metav1.ConditionFalse, rolesyncv1.ReasonDuplicateUser)
	})
	if got.Status.Role != "" || got.Status.SyncedRole != "" {
		t.Fatalf("duplicate resolved %q / synced %q", got.Status.Role, got.Status.SyncedRole)
	}
	// Two resyncs of the owner (counted, not slept): the twin never writes.
	reads, writes := store.reads.Load(), store.writes.Load()
	eventually(t, 30*time.Second, func() error {
		if n := store.reads.Load() - reads; n < 2 {
			return fmt.Errorf("%d drift reads", n)
		}
		return nil
	})
	if n := store.writes.Load() - writes; n != 0 {
		t.Fatalf("%d writes while the twin exists", n)
	}
	if role, _ := dbRole(t, db, first.Spec.UserID); role != "internal_user" {
		t.Fatalf("the duplicate wrote the row: %q", role)
	}

	// The older one goes (Retain): the twin takes over.
	if err := k8sClient.Delete(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	waitUser(t, client.ObjectKeyFromObject(twin), 30*time.Second, settled(rolesyncv1.RoleProxyAdmin))
	waitRow(t, db, first.Spec.UserID, "proxy_admin")
}

func TestDeletionPolicies(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	createMapping(t, ns, keycloakMapping, false)
	cases := []struct {
		policy rolesyncv1.DeletionPolicy
		row    string // "" means no row
	}{
		{rolesyncv1.DeletionPolicyRetain, "proxy_admin"},
		{rolesyncv1.DeletionPolicyDowngrade, "internal_user_viewer"},
		{rolesyncv1.DeletionPolicyDelete, ""},
	}
	for _, tc := range cases {
		t.Run(string(tc.policy), func(t *testing.T) {
			pu := newUser(ns, "del-"+strings.ToLower(string(tc.policy)), keycloakClaims("litellm-admin"), false)
			pu.Spec.DeletionPolicy = tc.policy
			createUser(t, signedUp(t, suiteDBURL, pu))
			waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleProxyAdmin))
			if err := k8sClient.Delete(context.Background(), pu); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, func() error {
				err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(pu), &rolesyncv1.ProxyUser{})
				if apierrors.IsNotFound(err) {
					return nil
				}
				return fmt.Errorf("still there: %w", err)
			})
			role, found := dbRole(t, suiteDB, pu.Spec.UserID)
			if tc.row == "" && found {
				t.Fatalf("row kept with role %q", role)
			}
			if tc.row != "" && role != tc.row {
				t.Fatalf("row role %q (found %v), want %q", role, found, tc.row)
			}
		})
	}
}

func TestDriftIsCorrectedUnderEnforce(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	createMapping(t, ns, keycloakMapping, false)
	pu := createUser(t, signedUp(t, suiteDBURL, newUser(ns, "dave", keycloakClaims("team-d"), false)))
	waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleInternalUser))

	// Someone promotes the user in the proxy's database directly.
	setRowRole(t, suiteDBURL, pu.Spec.UserID, "proxy_admin")
	waitRow(t, suiteDB, pu.Spec.UserID, "internal_user") // within a resync period
	got := waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		return conditionIs(pu, rolesyncv1.ConditionDrifted, metav1.ConditionFalse, rolesyncv1.ReasonDriftCorrected)
	})
	if err := conditionIs(got, rolesyncv1.ConditionReady, metav1.ConditionTrue, rolesyncv1.ReasonResolved); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, pu, rolesyncv1.ReasonDriftCorrected, "held proxy_admin")
}

func TestDriftIsOnlyReportedUnderReport(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	url, err := pgServer.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t, url)
	store := &countingStore{UserStore: db}
	startOperator(t, ns, Options{Store: store, DriftPolicy: DriftReport, ResyncPeriod: time.Second})
	createMapping(t, ns, keycloakMapping, true)
	pu := createUser(t, signedUp(t, url, newUser(ns, "erin", keycloakClaims("team-e"), true)))
	waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleInternalUser))

	setRowRole(t, url, pu.Spec.UserID, "proxy_admin")
	got := waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		return conditionIs(pu, rolesyncv1.ConditionDrifted, metav1.ConditionTrue, rolesyncv1.ReasonDriftDetected)
	})
	if err := conditionIs(got, rolesyncv1.ConditionReady, metav1.ConditionFalse, rolesyncv1.ReasonDriftDetected); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, pu, rolesyncv1.ReasonDriftDetected, "holds proxy_admin")
	// Three more drift checks (not a fixed sleep): the row is read, never rewritten.
	reads, writes := store.reads.Load(), store.writes.Load()
	eventually(t, 30*time.Second, func() error {
		if n := store.reads.Load() - reads; n < 3 {
			return fmt.Errorf("%d drift reads so far", n)
		}
		return nil
	})
	if n := store.writes.Load() - writes; n != 0 {
		t.Fatalf("Report issued %d writes", n)
	}
	if role, _ := dbRole(t, db, pu.Spec.UserID); role != "proxy_admin" {
		t.Fatalf("Report rewrote the row to %q", role)
	}
	// Putting the row back clears the report.
	setRowRole(t, url, pu.Spec.UserID, "internal_user")
	waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		return conditionIs(pu, rolesyncv1.ConditionDrifted, metav1.ConditionFalse, rolesyncv1.ReasonNoDrift)
	})
}

func TestWithoutDatabaseRolesStillResolve(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	startOperator(t, ns, Options{})
	createMapping(t, ns, keycloakMapping, true)
	pu := createUser(t, newUser(ns, "frank", keycloakClaims("litellm-auditor"), true))
	got := waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		if pu.Status.Role != rolesyncv1.RoleProxyAdminViewer {
			return fmt.Errorf("role %q", pu.Status.Role)
		}
		return conditionIs(pu, rolesyncv1.ConditionSynced, metav1.ConditionUnknown, rolesyncv1.ReasonNoDatabase)
	})
	if err := conditionIs(got, rolesyncv1.ConditionReady, metav1.ConditionTrue, rolesyncv1.ReasonResolved); err != nil {
		t.Fatal(err)
	}
	if got.Status.ObservedGeneration != got.Generation || got.Status.SyncedRole != "" {
		t.Fatalf("observedGeneration %d/%d syncedRole %q", got.Status.ObservedGeneration, got.Generation, got.Status.SyncedRole)
	}
}

// countingStore counts the statements the controller issues.
type countingStore struct {
	UserStore
	writes, reads atomic.Int64
	// finds counts Find alone; batches records each FindMany's size and time.
	finds   atomic.Int64
	mu      sync.Mutex
	batches []batchRead
}

type batchRead struct {
	users int
	at    time.Time
}

func (c *countingStore) batchReads() []batchRead {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.batches)
}

func (c *countingStore) Find(ctx context.Context, id, email string) (proxydb.Row, bool, error) {
	c.reads.Add(1)
	c.finds.Add(1)
	return c.UserStore.Find(ctx, id, email)
}

// FindMany counts one read per batch (one statement), when the wrapped
// store reads batches (the drift sweep).
func (c *countingStore) FindMany(ctx context.Context, lookups []proxydb.Lookup) ([]proxydb.Found, error) {
	c.reads.Add(1)
	c.mu.Lock()
	c.batches = append(c.batches, batchRead{users: len(lookups), at: time.Now()})
	c.mu.Unlock()
	return c.UserStore.(BatchStore).FindMany(ctx, lookups)
}

func (c *countingStore) Apply(ctx context.Context, ch proxydb.Change) (proxydb.Outcome, error) {
	c.writes.Add(1)
	return c.UserStore.Apply(ctx, ch)
}

func (c *countingStore) Delete(ctx context.Context, id, reason, object string) error {
	c.writes.Add(1)
	return c.UserStore.Delete(ctx, id, reason, object)
}

// statements counts every statement, reads and writes.
func (c *countingStore) statements() int64 { return c.reads.Load() + c.writes.Load() }

func TestUnchangedUsersCauseNoWrites(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	url, err := pgServer.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	store := &countingStore{UserStore: openDB(t, url)}
	startOperator(t, ns, Options{Store: store, ResyncPeriod: 500 * time.Millisecond})
	rm := createMapping(t, ns, keycloakMapping, true)
	const n = 10
	var users []*rolesyncv1.ProxyUser
	for i := range n {
		users = append(users, createUser(t, signedUp(t, url, newUser(ns, fmt.Sprintf("quiet%d", i), keycloakClaims("team-q"), true))))
	}
	versions := map[string]string{}
	for _, pu := range users {
		got := waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleInternalUser))
		versions[pu.Name] = got.ResourceVersion
	}
	// Every user has had a drift check (one happens only once a user is
	// synced): no write of the creation is still in flight.
	eventually(t, 30*time.Second, func() error {
		if r := store.reads.Load(); r < n {
			return fmt.Errorf("%d drift reads", r)
		}
		return nil
	})
	for _, pu := range users {
		got := &rolesyncv1.ProxyUser{}
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(pu), got); err != nil {
			t.Fatal(err)
		}
		versions[pu.Name] = got.ResourceVersion
	}
	writes, reads := store.writes.Load(), store.reads.Load()

	// An engine change that decides nothing new re-evaluates every user, and
	// several resync periods pass.
	patch := client.MergeFrom(rm.DeepCopy())
	rm.Spec.Rules = append(rm.Spec.Rules, rolesyncv1.RoleRule{ClaimMatcher: rolesyncv1.ClaimMatcher{Equals: ptr.To("nobody-has-this")}, Role: rolesyncv1.RoleProxyAdmin})
	if err := k8sClient.Patch(context.Background(), rm, patch); err != nil {
		t.Fatal(err)
	}
	// Two resync rounds of every user (not a fixed sleep).
	eventually(t, 30*time.Second, func() error {
		if r := store.reads.Load() - reads; r < 2*n {
			return fmt.Errorf("%d drift reads since the edit", r)
		}
		return nil
	})

	if got := store.writes.Load() - writes; got != 0 {
		t.Fatalf("%d database writes for unchanged users", got)
	}
	if store.reads.Load()-reads < n {
		t.Fatalf("only %d drift reads: the resync did not run", store.reads.Load()-reads)
	}
	for _, pu := range users {
		got := &rolesyncv1.ProxyUser{}
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(pu), got); err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != versions[pu.Name] {
			t.Fatalf("%s was written: resourceVersion %s -> %s", pu.Name, versions[pu.Name], got.ResourceVersion)
		}
	}
}

func openDB(t testing.TB, url string) *proxydb.DB {
	t.Helper()
	db, err := proxydb.Open(context.Background(), url, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// TestDatabaseOutageWhileUsersArrive creates 1000 ProxyUsers while the
// proxy database is down: each reports Synced=False and retries with
// backoff (no hot loop); once the database is back every row is right.
func TestDatabaseOutageWhileUsersArrive(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	db, outage := privateDatabase(t)
	store := &countingStore{UserStore: db}
	ns := newNamespace(t)
	startOperator(t, ns, Options{Store: store, MaxConcurrentReconciles: 8})
	createMapping(t, ns, keycloakMapping, true)
	const n = 1000
	seedRows(t, outage.url, ns, "o", n, 4) // LiteLLM's rows, there before the outage
	outage.stop()

	claims := [][]string{{"team-a"}, {"litellm-admin"}, {"litellm-auditor"}, {"nothing"}}
	want := []string{"internal_user", "proxy_admin", "proxy_admin_viewer", "internal_user_viewer"}
	createMany(t, n, func(i int) *rolesyncv1.ProxyUser {
		return newUser(ns, fmt.Sprintf("o%04d", i), keycloakClaims(claims[i%4]...), true)
	})
	countState := func(check func(*rolesyncv1.ProxyUser) error) (int, error) {
		var list rolesyncv1.ProxyUserList
		if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return 0, err
		}
		ok := 0
		for i := range list.Items {
			if check(&list.Items[i]) == nil {
				ok++
			}
		}
		return ok, nil
	}
	eventually(t, 120*time.Second, func() error {
		ok, err := countState(func(pu *rolesyncv1.ProxyUser) error {
			return conditionIs(pu, rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonSyncFailed)
		})
		if err == nil && ok != n {
			err = fmt.Errorf("%d of %d users report SyncFailed", ok, n)
		}
		return err
	})

	// Backoff, not a hot loop: a few attempts per user in 5 seconds, and
	// fewer in the next 5 seconds than in the first.
	window := func() int64 {
		before := store.statements()
		time.Sleep(5 * time.Second)
		return store.statements() - before
	}
	first, second := window(), window()
	t.Logf("write attempts with the database down, for %d users: %d in the first 5s, %d in the next 5s", n, first, second)
	if first > 5*n || second >= first {
		t.Fatalf("retries are not backing off: %d then %d attempts in 5s windows for %d users", first, second, n)
	}

	outage.restart()
	eventually(t, 180*time.Second, func() error {
		ok, err := countState(func(pu *rolesyncv1.ProxyUser) error {
			var i int
			if _, err := fmt.Sscanf(pu.Name, "o%04d", &i); err != nil {
				return err
			}
			return settled(rolesyncv1.Role(want[i%4]))(pu)
		})
		if err == nil && ok != n {
			err = fmt.Errorf("%d of %d users settled", ok, n)
		}
		return err
	})
	for i := range n {
		role, found := dbRole(t, db, fmt.Sprintf("%s-o%04d", ns, i))
		if !found || role != want[i%4] {
			t.Fatalf("row %d: %q (found %v), want %q", i, role, found, want[i%4])
		}
	}
}

// seedRows inserts the rows LiteLLM's sign-up gives the users
// <ns>-<prefix>0000.. (n of them, the number padded to digits) in the
// database at url: rolesync binds to LiteLLM's rows, it never creates one.
func seedRows(t testing.TB, url, ns, prefix string, n, digits int) {
	t.Helper()
	sqlExec(t, url, `INSERT INTO "LiteLLM_UserTable" (user_id, sso_user_id, user_role, updated_at)
		SELECT u, u, 'internal_user_viewer', now() FROM (SELECT $1 || '-' || $2 || lpad(g::text, $4, '0') AS u FROM generate_series(0, $3 - 1) g) x`,
		ns, prefix, n, digits)
}

// createMany creates n ProxyUsers from 8 goroutines.
func createMany(t testing.TB, n int, user func(int) *rolesyncv1.ProxyUser) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error { return k8sClient.Create(context.Background(), user(i)) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestDeletionWaitsForTheDatabase deletes a ProxyUser with deletionPolicy
// Delete while the database is down: the finalizer holds the object, an
// Event says why, and once the database is back the row goes and so does
// the object.
func TestDeletionWaitsForTheDatabase(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	db, outage := privateDatabase(t)
	ns := newNamespace(t)
	startOperator(t, ns, Options{Store: db})
	createMapping(t, ns, keycloakMapping, true)
	pu := newUser(ns, "gone", keycloakClaims("team-g"), true)
	pu.Spec.DeletionPolicy = rolesyncv1.DeletionPolicyDelete
	createUser(t, signedUp(t, outage.url, pu))
	waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleInternalUser))

	outage.stop()
	if err := k8sClient.Delete(ctx, pu); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, pu, rolesyncv1.ReasonDeleteFailed, "deletionPolicy Delete")
	held := &rolesyncv1.ProxyUser{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pu), held); err != nil || !controllerutil.ContainsFinalizer(held, proxyuser.Finalizer) {
		t.Fatalf("the object should wait for the database with its finalizer: %v %v", err, held.Finalizers)
	}

	outage.restart()
	eventually(t, 60*time.Second, func() error {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pu), &rolesyncv1.ProxyUser{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %w", err)
	})
	if role, found := dbRole(t, db, pu.Spec.UserID); found {
		t.Fatalf("the row survived with role %q", role)
	}
}

// outage stops and restarts a test's private database server.
type outage struct {
	t       testing.TB
	srv     *pgtest.Server
	url     string
	stopped bool
}

func (o *outage) stop() {
	o.t.Helper()
	if err := o.srv.Stop(); err != nil {
		o.t.Fatal(err)
	}
	o.stopped = true
}

func (o *outage) restart() {
	o.t.Helper()
	if err := o.srv.Restart(); err != nil {
		o.t.Fatal(err)
	}
	o.stopped = false
}

// privateDatabase starts a PostgreSQL server of the test's own (never the
// shared one: the test stops it) with LiteLLM's table.
func privateDatabase(t testing.TB) (*proxydb.DB, *outage) {
	t.Helper()
	srv, err := pgtest.StartPrivate()
	if err != nil {
		t.Fatal(err)
	}
	o := &outage{t: t, srv: srv}
	t.Cleanup(func() {
		if o.stopped {
			_ = srv.Restart()
		}
		_ = srv.Close()
	})
	if o.url, err = srv.NewDatabase(context.Background()); err != nil {
		t.Fatal(err)
	}
	return openDB(t, o.url), o
}
