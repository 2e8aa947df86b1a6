package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/login"
	"github.com/rolesync/rolesync/internal/login/authn"
	"github.com/rolesync/rolesync/internal/proxydb"
	"github.com/rolesync/rolesync/internal/testing/freeport"
	"github.com/rolesync/rolesync/internal/testing/managerproc"
	"github.com/rolesync/rolesync/internal/testing/pgtest"
	"github.com/rolesync/rolesync/internal/testing/syncbuf"
	"github.com/rolesync/rolesync/internal/testing/tcpproxy"
	"github.com/rolesync/rolesync/internal/testing/testenv"
)

// The tests run the manager binary as a user would, against a real
// kube-apiserver and etcd (envtest) and a private PostgreSQL.
var (
	env        *envtest.Environment
	cfg        *rest.Config
	k8s        client.Client
	kubeconfig []byte // a system:masters user for the manager
	managerBin string
	pg         *pgtest.Server
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// The tests' own clients log nothing worth reading (the managers they
	// start log to their own output); without a logger controller-runtime
	// prints a warning with a stack trace.
	ctrl.SetLogger(logr.Discard())
	e, err := testenv.Start(testenv.Options{Scheme: scheme, Postgres: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cmd/manager: %v\n", err)
		return 1
	}
	defer func() { _ = e.Stop() }()
	env, cfg, k8s, pg = e.Env, e.Config, e.Client, e.Postgres
	if kubeconfig, err = e.Admin.KubeConfig(); err != nil {
		fmt.Fprintf(os.Stderr, "cmd/manager: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "rolesync-manager-test-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "cmd/manager: %v\n", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	managerBin = filepath.Join(dir, "manager")
	if out, err := exec.Command("go", "build", "-o", managerBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cmd/manager: build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// manager is one run of the manager binary, with its output.
type manager struct {
	*managerproc.Process
	logs *syncbuf.Buffer
}

// startManager runs the binary with a kubeconfig pointing at server (the
// apiserver, or a proxy in front of it) and extra flags, and waits until it
// is ready; it is killed when the test ends.
func startManager(t testing.TB, server string, env []string, args ...string) *manager {
	t.Helper()
	kc, err := clientcmd.Load(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range kc.Clusters {
		c.Server = server
	}
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kcPath); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	p, err := managerproc.Start(context.Background(), managerBin,
		append([]string{"--kubeconfig", kcPath, "--metrics-bind-address", "0", "--kube-api-qps", "500", "--kube-api-burst", "1000"}, args...),
		append([]string{"ENABLE_WEBHOOKS=false", "DATABASE_URL="}, env...), logs, 60*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	m := &manager{Process: p, logs: logs}
	t.Cleanup(m.Kill)
	return m
}

// TestManagerBinary checks that the binary becomes ready and that its
// RoleMapping controller refuses an invalid mapping.
func TestManagerBinary(t *testing.T) {
	m := startManager(t, cfg.Host, nil)
	ctx := context.Background()
	ns := newNamespace(t)
	bad := &rolesyncv1.RoleMapping{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns}}
	re := "("
	bad.Spec.Claim = "groups"
	bad.Spec.Rules = []rolesyncv1.RoleRule{{ClaimMatcher: rolesyncv1.ClaimMatcher{Regex: &re}, Role: rolesyncv1.RoleInternalUser}}
	if err := k8s.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, m.logs, func() error {
		got := &rolesyncv1.RoleMapping{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(bad), got); err != nil {
			return err
		}
		cond := apimeta.FindStatusCondition(got.Status.Conditions, rolesyncv1.ConditionReady)
		if cond == nil || cond.Reason != rolesyncv1.ReasonInvalidSpec {
			return fmt.Errorf("Ready condition %+v", cond)
		}
		return nil
	})
	if !strings.Contains(m.logs.String(), "running without a database") {
		t.Fatalf("no one-time notice about running without a database:\n%s", m.logs.String())
	}
}

func TestManagerRefusesABadDriftPolicy(t *testing.T) {
	out, err := exec.Command(managerBin, "--drift-policy", "Ignore").CombinedOutput()
	var exit *exec.ExitError
	if !asExit(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "--drift-policy must be Enforce or Report") {
		t.Fatalf("output:\n%s", out)
	}
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError) //nolint:errorlint // exec returns it unwrapped
	*target = e
	return ok
}

// TestManagerKilledMidConvergenceConverges kills the manager with SIGKILL
// while it is syncing users, starts it again and checks that every user
// converges: nothing was lost between status and rows.
func TestManagerKilledMidConvergenceConverges(t *testing.T) {
	ctx := context.Background()
	dbURL, db := newDatabase(t)
	ns := newNamespace(t)
	createKeycloakMapping(t, ns)
	first := startManager(t, cfg.Host, []string{"DATABASE_URL=" + dbURL}, "--max-concurrent-reconciles", "2")
	const n = 400
	createUsers(t, ns, dbURL, n)
	waitFor(t, 60*time.Second, first.logs, func() error {
		if c := countRows(t, dbURL); c < 20 {
			return fmt.Errorf("%d rows so far", c)
		}
		return nil
	})
	first.Kill()
	rows := countRows(t, dbURL)
	t.Logf("killed the manager with %d of %d rows written", rows, n)
	if rows == n {
		t.Fatal("the manager finished before it was killed: nothing was interrupted")
	}

	second := startManager(t, cfg.Host, []string{"DATABASE_URL=" + dbURL}, "--max-concurrent-reconciles", "4")
	waitConverged(t, ctx, second, db, ns, n, rolesyncv1.RoleInternalUser)
}

// TestAPIServerOutageConverges cuts the manager off the apiserver (every
// connection reset, new ones refused, as when the apiserver process dies)
// while a mapping edit is in flight, brings it back, and checks that every
// user converges to the edited mapping.
func TestAPIServerOutageConverges(t *testing.T) {
	ctx := context.Background()
	dbURL, db := newDatabase(t)
	ns := newNamespace(t)
	rm := createKeycloakMapping(t, ns)
	proxy := proxyToAPIServer(t)
	m := startManager(t, "https://"+proxy.Addr, []string{"DATABASE_URL=" + dbURL})
	const n = 100
	createUsers(t, ns, dbURL, n)
	waitConverged(t, ctx, m, db, ns, n, rolesyncv1.RoleInternalUser)

	outageFrom := len(m.logs.String())
	if err := proxy.Stop(); err != nil {
		t.Fatal(err)
	}
	// While the manager cannot reach it, the mapping changes.
	patch := client.MergeFrom(rm.DeepCopy())
	rm.Spec.Rules[0].Role = rolesyncv1.RoleProxyAdminViewer
	if err := k8s.Patch(ctx, rm, patch); err != nil {
		t.Fatal(err)
	}
	// The outage lasts until the manager has failed to reach the apiserver
	// a few times (counted in its log), not for a fixed time.
	waitFor(t, 60*time.Second, m.logs, func() error {
		if n := strings.Count(m.logs.String()[outageFrom:], "connection refused"); n < 3 {
			return fmt.Errorf("the manager failed to reach the apiserver %d times so far", n)
		}
		return nil
	})
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, ctx, m, db, ns, n, rolesyncv1.RoleProxyAdminViewer)
	if m.Exited() {
		t.Fatalf("the manager exited during the outage:\n%s", m.logs.String())
	}
}

func newDatabase(t testing.TB) (string, *proxydb.DB) {
	t.Helper()
	dbURL, err := pg.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db, err := proxydb.Open(context.Background(), dbURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return dbURL, db
}

func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func createKeycloakMapping(t testing.TB, ns string) *rolesyncv1.RoleMapping {
	t.Helper()
	glob := "team-*"
	rm := &rolesyncv1.RoleMapping{ObjectMeta: metav1.ObjectMeta{Name: "keycloak", Namespace: ns}}
	rm.Spec.Claim = "resource_access.litellm.roles"
	rm.Spec.Rules = []rolesyncv1.RoleRule{{ClaimMatcher: rolesyncv1.ClaimMatcher{Glob: &glob}, Role: rolesyncv1.RoleInternalUser}}
	if err := k8s.Create(context.Background(), rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// createUsers creates n users u0000.. whose claims match the team-* rule,
// each with the row LiteLLM's sign-up gives it in the database at dbURL
// (rolesync never creates user rows).
func createUsers(t testing.TB, ns, dbURL string, n int) {
	t.Helper()
	ctx := context.Background()
	conn := connectDB(t, dbURL)
	if _, err := conn.Exec(ctx, `INSERT INTO "LiteLLM_UserTable" (user_id, sso_user_id, user_role, updated_at)
		SELECT u, u, 'internal_user_viewer', now() FROM (SELECT $1 || '-u' || lpad(g::text, 4, '0') AS u FROM generate_series(0, $2 - 1) g) x`, ns, n); err != nil {
		t.Fatal(err)
	}
	claims, _ := json.Marshal(map[string]any{"resource_access": map[string]any{"litellm": map[string]any{"roles": []string{"team-a"}}}})
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			pu := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("u%04d", i)}}
			pu.Spec.UserID = fmt.Sprintf("%s-u%04d", ns, i)
			pu.Spec.Claims = &apiextensionsv1.JSON{Raw: claims}
			return k8s.Create(context.Background(), pu)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func countRows(t testing.TB, dbURL string) int { return countRowsIn(t, dbURL, "") }

// waitConverged waits until all n users of ns hold role in status and in
// their rows.
func waitConverged(t testing.TB, ctx context.Context, m *manager, db *proxydb.DB, ns string, n int, role rolesyncv1.Role) {
	t.Helper()
	waitFor(t, max(180*time.Second, time.Duration(n)*50*time.Millisecond), m.logs, func() error {
		var list rolesyncv1.ProxyUserList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		done := 0
		for _, pu := range list.Items {
			if pu.Status.Role == role && pu.Status.SyncedRole == role && pu.Status.ObservedGeneration == pu.Generation &&
				apimeta.IsStatusConditionTrue(pu.Status.Conditions, rolesyncv1.ConditionSynced) {
				done++
			}
		}
		if done != n {
			return fmt.Errorf("%d of %d users settled on %s", done, n, role)
		}
		for i := range n {
			got, found, err := db.Find(ctx, fmt.Sprintf("%s-u%04d", ns, i), "")
			if err != nil {
				return err
			}
			if !found || got.Role != string(role) {
				return fmt.Errorf("row %d holds %q (found %v)", i, got.Role, found)
			}
		}
		return nil
	})
}

func freeAddr(t testing.TB) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func waitFor(t testing.TB, timeout time.Duration, logs *syncbuf.Buffer, cond func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, 100*time.Millisecond, cond, func() string { return "manager log (tail):\n" + tail(logs.String(), 4000) })
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

// proxyToAPIServer puts a TCP proxy between a manager and the apiserver, so
// a test can cut the manager off (as if the apiserver died) and reconnect it.
func proxyToAPIServer(t testing.TB) *tcpproxy.Proxy {
	t.Helper()
	apiURL, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := tcpproxy.Start(apiURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Stop() })
	return proxy
}

// TestShardsServeDisjointNamespaces runs two manager binaries on disjoint
// shards (--watch-namespaces, each its own leader-election id) against one
// database: while only shard A runs, A's users converge and B's are never
// touched; A's login server refuses B's namespace (404 NamespaceNotServed);
// then shard B converges its own.
func TestShardsServeDisjointNamespaces(t *testing.T) {
	ctx := context.Background()
	dbURL, db := newDatabase(t)
	a, b := newNamespace(t), newNamespace(t)
	createKeycloakMapping(t, a)
	createKeycloakMapping(t, b)
	const n = 50
	createUsers(t, a, dbURL, n)
	createUsers(t, b, dbURL, n)
	secret := "shard-test-secret-0123456789abcdef01234567"
	secretFile := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	loginAddr := freeAddr(t)
	shardA := startManager(t, cfg.Host, []string{"DATABASE_URL=" + dbURL}, "--watch-namespaces", a,
		"--leader-elect", "--leader-election-id", "shard-a", "--leader-election-namespace", a,
		"--login-insecure", "--login-bind-address", loginAddr, "--login-hmac-secret-file", secretFile)
	waitConverged(t, ctx, shardA, db, a, n, rolesyncv1.RoleInternalUser)
	var listB rolesyncv1.ProxyUserList
	if err := k8s.List(ctx, &listB, client.InNamespace(b)); err != nil {
		t.Fatal(err)
	}
	for _, pu := range listB.Items {
		if pu.Status.Role != "" || len(pu.Finalizers) > 0 {
			t.Fatalf("shard A touched %s/%s of shard B: %+v", b, pu.Name, pu.Status)
		}
	}
	if c := countRowsIn(t, dbURL, b); c != 0 {
		t.Fatalf("shard A wrote %d rows of shard B's users", c)
	}
	body, _ := json.Marshal(map[string]any{"id": "shard-1", "time": time.Now().UTC().Format(time.RFC3339Nano), "userID": b + "-u0000",
		"namespace": b, "issuer": "https://idp.example.com", "claims": map[string]any{}})
	req, _ := http.NewRequest(http.MethodPost, "http://"+loginAddr+"/v1/namespaces/"+b+"/login-events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(authn.SignatureHeader, authn.Sign([]byte(secret), body, time.Now()))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusNotFound || !strings.Contains(string(data), login.ReasonNamespaceNotServed) {
		t.Fatalf("a login for shard B at shard A: %d %s", res.StatusCode, data)
	}

	shardB := startManager(t, cfg.Host, []string{"DATABASE_URL=" + dbURL}, "--watch-namespaces", b,
		"--leader-elect", "--leader-election-id", "shard-b", "--leader-election-namespace", b)
	waitConverged(t, ctx, shardB, db, b, n, rolesyncv1.RoleInternalUser)
}

// countRowsIn counts the rows rolesync has written (LiteLLM's sign-up left
// them internal_user_viewer) of the users of ns ("": of every namespace).
func countRowsIn(t testing.TB, dbURL, ns string) int {
	t.Helper()
	ctx := context.Background()
	conn := connectDB(t, dbURL)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_role = 'internal_user' AND ($1 = '' OR user_id LIKE $1 || '-u%')`, ns).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// connectDB opens one connection to the database at dbURL, closed when the
// test ends.
func connectDB(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
