package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/controllers"
	"github.com/rolesync/rolesync/internal/proxydb"
	"github.com/rolesync/rolesync/internal/rolemap"
	"github.com/rolesync/rolesync/internal/testing/testenv"
)

// The suite runs the manager as cmd/manager wires it, on a real control
// plane and LiteLLM's schema in a real PostgreSQL: the controllers (with
// --key-revocation off: deprovisioning blocks keys regardless) and the SCIM
// server on loopback. Tests send the requests Entra ID and Okta send.
var (
	scheme    = runtime.NewScheme()
	k8sClient client.Client
	dbURL     string
	baseURL   string
	logs      = &lockedBuffer{}
	suite     = testenv.NewSuite(startSuite)
	registry  = rolemap.NewRegistry()
)

// One token per tenant namespace of the suite (created at start).
var tokens = map[string]string{
	"scim-entra": "entra-token-0123456789abcdef0123456789abcdef",
	"scim-okta":  "okta-token-0123456789abcdef0123456789abcdefgh",
	"scim-bad":   "bad-input-token-0123456789abcdef0123456789ab",
	"scim-speed": "speed-token-0123456789abcdef0123456789abcdefg",
	"scim-other": "other-token-0123456789abcdef0123456789abcdefg",
	// The benchmark's tenants.
	"scim-bench-a": "bench-a-token-0123456789abcdef0123456789abcd",
	"scim-bench-b": "bench-b-token-0123456789abcdef0123456789abcd",
}

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(rolesyncv1.AddToScheme(scheme))
}

func needSuite(t testing.TB) {
	t.Helper()
	suite.Need(t)
}

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(true)))
	code := suite.Run(m, "scim")
	if suite.Started() {
		for ns, tok := range tokens {
			if strings.Contains(logs.String(), tok) {
				fmt.Fprintf(os.Stderr, "scim: the token of %s appears in the logs\n", ns)
				code = 1
			}
		}
	}
	os.Exit(code)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startSuite() (_ func(), err error) {
	var stops testenv.Stops
	defer func() {
		if err != nil {
			stops.Run()
		}
	}()
	env, err := testenv.Start(testenv.Options{Scheme: scheme, Postgres: true})
	if err != nil {
		return nil, err
	}
	stops.Add(func() { _ = env.Stop() })
	k8sClient = env.Client
	ctx, cancel := context.WithCancel(context.Background())
	stops.Add(cancel)
	if dbURL, err = env.Postgres.NewDatabase(ctx); err != nil {
		return nil, err
	}
	db, err := proxydb.Open(ctx, dbURL, 8)
	if err != nil {
		return nil, err
	}
	stops.Add(db.Close)
	for ns := range tokens {
		if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "rolesync-scim-")
	if err != nil {
		return nil, err
	}
	stops.Add(func() { _ = os.RemoveAll(dir) })
	var lines strings.Builder
	for ns, tok := range tokens {
		fmt.Fprintf(&lines, "%s: %s\n", ns, tok)
	}
	tokenFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokenFile, []byte(lines.String()), 0o600); err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		return nil, err
	}
	// The manager's defaults for Events and workers, as cmd/manager wires it
	// (the benchmark measures them).
	if err := controllers.Setup(mgr, controllers.Options{Registry: registry, Store: db, ResyncPeriod: 30 * time.Second,
		MaxConcurrentReconciles: 4}); err != nil {
		return nil, err
	}
	srv, err := NewServer(Options{BindAddress: "127.0.0.1:0", Insecure: true, TokenFile: tokenFile, Issuer: entraIssuer},
		mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("rolesync.dev/scim"), ctrl.Log.WithName("scim"))
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(srv); err != nil {
		return nil, err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "scim: manager stopped: %v\n", err)
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	addr, err := srv.Addr(wctx)
	if err != nil {
		return nil, err
	}
	baseURL = "http://" + addr
	return stops.Run, nil
}

const entraIssuer = "https://login.microsoftonline.com/tenant-1/v2.0"

// reply is a SCIM answer.
type reply struct {
	status int
	body   map[string]any
	raw    string
	took   time.Time // when the answer arrived
}

// call sends a SCIM request to namespace ns with its token.
func call(t testing.TB, method, ns, path string, body any) reply {
	t.Helper()
	return callWith(t, tokens[ns], method, ns, path, body)
}

func callWith(t testing.TB, token, method, ns, path string, body any) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, baseURL+"/scim/v2/"+ns+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/scim+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	data, _ := io.ReadAll(res.Body)
	r := reply{status: res.StatusCode, raw: string(data), took: time.Now()}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &r.body); err != nil {
			t.Fatalf("%s %s: %d with a body that is not JSON: %s", method, path, res.StatusCode, data)
		}
	}
	return r
}

// must fails unless the reply has one of the statuses.
func (r reply) must(t testing.TB, what string, statuses ...int) reply {
	t.Helper()
	for _, s := range statuses {
		if r.status == s {
			return r
		}
	}
	t.Fatalf("%s: %d %s, want %v", what, r.status, r.raw, statuses)
	return r
}

func (r reply) str(key string) string { s, _ := r.body[key].(string); return s }

// withMapping creates a RoleMapping in ns and waits until it is loaded.
func withMapping(t testing.TB, ns, doc string) {
	t.Helper()
	testenv.CreateMapping(t, k8sClient, registry, ns, doc)
}

func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, 20*time.Millisecond, cond, nil)
}

func getUser(t testing.TB, ns, name string) *rolesyncv1.ProxyUser {
	t.Helper()
	pu := &rolesyncv1.ProxyUser{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, pu); err != nil {
		t.Fatal(err)
	}
	return pu
}

// sqlExec runs one statement on the suite's LiteLLM database.
func sqlExec(t testing.TB, stmt string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(context.Background(), stmt, args...); err != nil {
		t.Fatal(err)
	}
}

// rowState reads a LiteLLM user row's role and activation, and whether the
// key is blocked.
type rowState struct {
	role       string
	inactive   bool
	keyBlocked bool
}

func readRow(t testing.TB, userID, key string) rowState {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var s rowState
	err = conn.QueryRow(context.Background(), `SELECT COALESCE(u.user_role, ''), COALESCE(u.metadata->'scim_active' = 'false'::jsonb, false),
		COALESCE((SELECT blocked FROM "LiteLLM_VerificationToken" WHERE token = $2), false)
		FROM "LiteLLM_UserTable" u WHERE u.user_id = $1`, userID, key).Scan(&s.role, &s.inactive, &s.keyBlocked)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// litellmRow is the row and one virtual key LiteLLM made for a user at
// their first login (an SSO sign-up).
func litellmRow(t testing.TB, userID, email, key string) {
	t.Helper()
	sqlExec(t, `INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role, updated_at) VALUES ($1, $2, 'internal_user_viewer', now())`, userID, email)
	sqlExec(t, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id, blocked, metadata) VALUES ($1, $2, false, '{}')`, key, userID)
}
