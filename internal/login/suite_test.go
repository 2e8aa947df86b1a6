package login

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/controllers"
	"github.com/rolesync/rolesync/internal/login/authn"
	"github.com/rolesync/rolesync/internal/rolemap"
	"github.com/rolesync/rolesync/internal/testing/idp"
	"github.com/rolesync/rolesync/internal/testing/syncbuf"
	"github.com/rolesync/rolesync/internal/testing/testenv"
)

// The suite runs the login server as the manager does, on a real
// kube-apiserver and etcd (envtest), with the controllers of
// controllers.Setup (no database) so users also get their status.
var (
	cfg       *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
	baseURL   string
	srv       *Server
	logs      = &syncbuf.Buffer{}

	secretFile string
	secrets    = []string{"current-secret-0123456789abcdef0123456789", "previous-secret-0123456789abcdef012345678"}
	rsaKey     *rsa.PrivateKey
	ecKey      *ecdsa.PrivateKey
	hsKey      = []byte("jwks-oct-hmac-key-0123456789abcdef0123456789")

	// secretsUsed collects every secret, token and signature a test sent:
	// none may appear in the logs.
	secretsUsed sync.Map
)

const (
	idpIssuer   = "https://idp.example.com/realms/ai"
	jwtIssuer   = "https://proxy.example.com"
	jwtAudience = "rolesync"
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(rolesyncv1.AddToScheme(scheme))
}

// suite is the envtest control plane, the OpenID providers and the suite
// manager with its login server, started by the first test that needs them
// (needSuite): the tests of pure steps run with plain `go test`.
var suite = testenv.NewSuite(startSuite)

// needSuite starts the suite if needed; a test that uses the login server,
// k8sClient or the providers calls it first.
func needSuite(t testing.TB) {
	t.Helper()
	suite.Need(t)
}

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.MultiWriter(logs, verboseOut())), zap.UseDevMode(true), zap.Level(zapcore.DebugLevel)))
	code := suite.Run(m, "login")
	// After every test of the package (so it holds under -run and -shuffle):
	// no secret, token or signature a test sent to the login server may
	// appear in the logs.
	if suite.Started() {
		if err := logsHoldNoSecret(); err != nil {
			fmt.Fprintln(os.Stderr, "login:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func startSuite() (_ func(), err error) {
	var stops testenv.Stops
	defer func() {
		if err != nil {
			stops.Run()
		}
	}()
	env, err := testenv.Start(testenv.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	stops.Add(func() { _ = env.Stop() })
	cfg, k8sClient = env.Config, env.Client
	dir, err := os.MkdirTemp("", "rolesync-login-")
	if err != nil {
		return nil, err
	}
	stops.Add(func() { _ = os.RemoveAll(dir) })
	if err := writeKeys(dir); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	stopProviders, err := startProviders(dir)
	if err != nil {
		return nil, fmt.Errorf("OpenID providers: %w", err)
	}
	stops.Add(stopProviders)
	ctx, cancel := context.WithCancel(context.Background())
	stops.Add(cancel)
	if err := startManager(ctx, dir); err != nil {
		return nil, err
	}
	return stops.Run, nil
}

func verboseOut() io.Writer {
	if os.Getenv("ROLESYNC_TEST_VERBOSE") != "" {
		return os.Stderr
	}
	return io.Discard
}

func writeKeys(dir string) error {
	var err error
	if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return err
	}
	if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	secretFile = filepath.Join(dir, "secrets")
	if err := os.WriteFile(secretFile, []byte("# current, then the one being rotated out\n"+strings.Join(secrets, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	for _, s := range secrets {
		secretsUsed.Store(s, true)
	}
	secretsUsed.Store(string(hsKey), true)
	b64u := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	jwks := map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "rsa", "use": "sig", "n": b64u(rsaKey.N.Bytes()), "e": b64u(big.NewInt(int64(rsaKey.E)).Bytes())},
		{"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64u(ecKey.X.FillBytes(make([]byte, 32))), "y": b64u(ecKey.Y.FillBytes(make([]byte, 32)))},
		{"kty": "oct", "kid": "hs", "alg": "HS256", "k": b64u(hsKey)},
	}}
	data, _ := json.Marshal(jwks)
	return os.WriteFile(filepath.Join(dir, "jwks.json"), data, 0o600)
}

// The OpenID providers of the suite (real ones: idp, on loopback): the
// server trusts provider everywhere, scoped only in scopedNamespace, and
// otherAudience only for an audience its tokens are not issued for;
// untrusted is not in its configuration.
var (
	provider, scoped, otherAudience, untrusted *idp.Provider
	oidcConfig                                 string
	oidcIssuers                                []oidcIssuer
	oidcMu                                     sync.Mutex
)

const scopedNamespace = "login-scoped"

type oidcIssuer struct {
	URL        string   `json:"url"`
	Audiences  []string `json:"audiences"`
	UserID     string   `json:"userIDClaim"`
	Namespaces []string `json:"namespaces"`
}

func startProviders(dir string) (func(), error) {
	var ps []*idp.Provider
	stop := func() {
		for _, p := range ps {
			_ = p.Stop()
		}
	}
	for _, p := range []**idp.Provider{&provider, &scoped, &otherAudience, &untrusted} {
		var err error
		if *p, err = idp.Start(); err != nil {
			stop()
			return nil, err
		}
		ps = append(ps, *p)
	}
	if err := k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: scopedNamespace}}); err != nil {
		stop()
		return nil, err
	}
	oidcConfig = filepath.Join(dir, "oidc.yaml")
	oidcIssuers = []oidcIssuer{
		{URL: provider.Issuer(), Audiences: []string{provider.ClientID()}, UserID: "preferred_username", Namespaces: []string{"*"}},
		{URL: scoped.Issuer(), Audiences: []string{scoped.ClientID()}, UserID: "preferred_username", Namespaces: []string{scopedNamespace}},
		{URL: otherAudience.Issuer(), Audiences: []string{"litellm"}, UserID: "preferred_username", Namespaces: []string{"*"}},
	}
	return stop, writeOIDCConfig()
}

func writeOIDCConfig() error {
	data, err := yaml.Marshal(map[string]any{"issuers": oidcIssuers})
	if err != nil {
		return err
	}
	tmp := oidcConfig + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, oidcConfig)
}

// addIssuer trusts one more provider (the server re-reads the file).
func addIssuer(t testing.TB, url, audience, namespace string) {
	t.Helper()
	oidcMu.Lock()
	defer oidcMu.Unlock()
	is := oidcIssuer{URL: url, Audiences: []string{audience}, UserID: "preferred_username", Namespaces: []string{"*"}}
	if namespace != "" {
		is.Namespaces = []string{namespace}
	}
	oidcIssuers = append(oidcIssuers, is)
	if err := writeOIDCConfig(); err != nil {
		t.Fatal(err)
	}
}

var registry = rolemap.NewRegistry()

func startManager(ctx context.Context, dir string) error {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	if err := controllers.Setup(mgr, controllers.Options{Registry: registry, MaxConcurrentReconciles: 4}); err != nil {
		return err
	}
	srv, err = NewServer(Options{
		BindAddress: "127.0.0.1:0", Insecure: true,
		HMACSecretFile: secretFile, JWTKeysFile: filepath.Join(dir, "jwks.json"),
		JWTIssuer: jwtIssuer, JWTAudience: jwtAudience, JWTLeeway: 30 * time.Second,
		OIDCConfigFile: oidcConfig,
		KeepClaims:     []string{"name"}, RateLimit: 0, RequireNamespace: true, // the manager's default
	}, mgr.GetClient(), mgr.GetAPIReader(), registry, mgr.GetEventRecorder("rolesync.dev/login-server"), ctrl.Log.WithName("login"))
	if err != nil {
		return err
	}
	if err := mgr.Add(srv); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "login: manager stopped: %v\n", err)
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	addr, err := srv.Addr(wctx)
	if err != nil {
		return fmt.Errorf("login server did not start: %w", err)
	}
	baseURL = "http://" + addr
	return nil
}

// --- helpers ---

func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{}
	ns.GenerateName = "login-"
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

const strictMapping = `metadata: {name: strict}
spec:
  claim: groups
  rules:
  - {equals: platform, role: internal_user}
  - {glob: "admins-*", role: proxy_admin}
  onNoMatch: Deny
`

// withMapping creates a RoleMapping in ns and waits until the login server
// would use it.
func withMapping(t testing.TB, ns, doc string) {
	t.Helper()
	testenv.CreateMapping(t, k8sClient, registry, ns, doc)
}

func waitUntil(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, 50*time.Millisecond, cond, nil)
}

// event returns a valid event as a JSON-able map.
func event(id, user string, at time.Time, claims map[string]any) map[string]any {
	return map[string]any{"id": id, "time": at.UTC().Format(time.RFC3339Nano), "userID": user, "email": user + "@example.com", "issuer": idpIssuer, "claims": claims}
}

// inNS signs ev for namespace ns.
func inNS(ns string, ev map[string]any) map[string]any {
	ev["namespace"] = ns
	return ev
}

type reply struct {
	status int
	body   []byte
	resp   Response
	err    errorBody
	header http.Header
}

func send(t testing.TB, method, path, contentType string, body []byte, header map[string]string) reply {
	t.Helper()
	r, err := trySend(method, path, contentType, body, header)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// trySend is send for goroutines: it returns what went wrong instead of
// failing the test.
func trySend(method, path, contentType string, body []byte, header map[string]string) (reply, error) {
	return trySendTo(baseURL, method, path, contentType, body, header)
}

// trySendTo is trySend to the login server at base (another replica).
func trySendTo(base, method, path, contentType string, body []byte, header map[string]string) (reply, error) {
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer func() { _ = res.Body.Close() }()
	data, _ := io.ReadAll(res.Body)
	r := reply{status: res.StatusCode, body: data, header: res.Header}
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, &r.resp); err != nil {
			return r, fmt.Errorf("200 with a body that is not a response: %s", data)
		}
	} else if err := json.Unmarshal(data, &r.err); err != nil || r.err.Reason == "" {
		return r, fmt.Errorf("%d with a body that is not a JSON error: %s", res.StatusCode, data)
	}
	return r, nil
}

// httpClient keeps enough idle connections for 32 concurrent senders.
var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

func eventsPath(ns string) string { return "/v1/namespaces/" + ns + "/login-events" }

// postSigned signs body with secret at t (now when zero) and posts it.
func postSigned(t testing.TB, ns string, body []byte, secret string, at time.Time) reply {
	t.Helper()
	if at.IsZero() {
		at = time.Now()
	}
	sig := authn.Sign([]byte(secret), body, at)
	recordSignature(sig)
	return send(t, http.MethodPost, eventsPath(ns), "application/json", body, map[string]string{authn.SignatureHeader: sig})
}

// postEvent signs ev (for ns, unless it names a namespace) and posts it to ns.
func postEvent(t testing.TB, ns string, ev map[string]any) reply {
	t.Helper()
	if _, ok := ev["namespace"]; !ok {
		ev["namespace"] = ns
	}
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return postSigned(t, ns, body, secrets[0], time.Time{})
}

// token signs the event as a JWT with the registered claims filled in.
func token(t testing.TB, ev map[string]any, method jwt.SigningMethod, key any, kid string, edit func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{"iss": jwtIssuer, "aud": jwtAudience, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": ev["id"]}
	for k, v := range ev {
		if k != "id" {
			c[k] = v
		}
	}
	if edit != nil {
		edit(c)
	}
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	secretsUsed.Store(s, true)
	secretsUsed.Store(s[strings.LastIndexByte(s, '.')+1:], true) // the signature alone
	return s
}

func postToken(t testing.TB, ns, tok string) reply {
	t.Helper()
	return send(t, http.MethodPost, eventsPath(ns), "application/jwt", []byte(tok), nil)
}

// snapshot returns name -> generation of every ProxyUser in ns.
func snapshot(t testing.TB, ns string) map[string]string {
	t.Helper()
	var list rolesyncv1.ProxyUserList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, pu := range list.Items {
		// The generation: what the login server writes (spec); the
		// controller's status writes run concurrently and are not the
		// login server's.
		out[pu.Name] = strconv.FormatInt(pu.Generation, 10)
	}
	return out
}

// restoreSecrets writes the suite's secrets file back and makes the
// server re-read it at once (it re-reads at most once a second), so the
// next test does not meet the damaged file.
func restoreSecrets(orig []byte) {
	_ = writeAtomic(secretFile, orig)
	_, _ = srv.secrets.Get(time.Now(), true)
}

// recordSignature remembers a signature header and its hex MAC.
func recordSignature(sig string) {
	secretsUsed.Store(sig, true)
	if i := strings.Index(sig, "v1="); i >= 0 {
		secretsUsed.Store(sig[i+3:], true)
	}
}
