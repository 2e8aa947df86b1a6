// Package demo runs the whole product locally, as `make demo` shows it: a
// real kube-apiserver and etcd, a private PostgreSQL with LiteLLM's table,
// the manager binary with its login server, the sample RoleMappings applied
// with kubectl, and signed sample logins. The walkthrough test drives the
// same flow and checks what it prints.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rolesync/rolesync/internal/login/authn"
	"github.com/rolesync/rolesync/internal/testing/freeport"
	"github.com/rolesync/rolesync/internal/testing/managerproc"
	"github.com/rolesync/rolesync/internal/testing/pgtest"
)

// Options say where the parts are and how to run.
type Options struct {
	Out        io.Writer // progress and results
	Assets     string    // directory with kube-apiserver, etcd and kubectl
	ManagerBin string    // the built manager
	RepoRoot   string    // for config/crd/bases and config/samples
	Dir        string    // working directory (kubeconfig, secrets, logs)
	// Wait, when true, keeps everything running until ctx ends (Ctrl-C).
	Wait bool
}

// Login is one sample login and what rolesync answered.
type Login struct {
	UserID, Issuer string
	Claims         map[string]any
	Status         int
	Answer         map[string]any
}

// Result is what the demo showed.
type Result struct {
	Logins     []Login
	ProxyUsers string            // `kubectl get proxyusers -o wide`
	Rows       map[string]string // user_id -> user_role in LiteLLM_UserTable
	Kubeconfig string
}

const (
	keycloakIssuer = "https://keycloak.example.com/realms/ai"
	entraIssuer    = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0"
	googleIssuer   = "https://accounts.google.com"
)

// SampleLogins are the logins the demo posts.
func SampleLogins() []Login {
	kc := func(roles ...any) map[string]any {
		return map[string]any{"resource_access": map[string]any{"litellm": map[string]any{"roles": roles}}}
	}
	return []Login{
		{UserID: "alice@example.com", Issuer: keycloakIssuer, Claims: kc("litellm-admin", "team-search")},
		{UserID: "frank@example.com", Issuer: keycloakIssuer, Claims: kc("team-search")},
		{UserID: "bob@example.com", Issuer: entraIssuer, Claims: map[string]any{"groups": []any{"sg-ai-search-developers"}}},
		{UserID: "carol@example.com", Issuer: entraIssuer, Claims: map[string]any{"groups": []any{"SG-AI-Search-Readers"}}},
		{UserID: "dan@example.com", Issuer: googleIssuer, Claims: map[string]any{"email_verified": true, "groups": []any{"platform"}}},
		{UserID: "eve@example.com", Issuer: googleIssuer, Claims: map[string]any{"email_verified": true, "groups": []any{"sales"}}},
	}
}

// Run runs the demo. Everything it starts is stopped before it returns.
func Run(ctx context.Context, o Options) (*Result, error) {
	say := func(format string, args ...any) { fmt.Fprintf(o.Out, ">> "+format+"\n", args...) }
	res := &Result{}

	say("starting kube-apiserver and etcd (from %s)", o.Assets)
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(o.RepoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: o.Assets,
	}
	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()
	user, err := env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	res.Kubeconfig = filepath.Join(o.Dir, "kubeconfig")
	if err := os.WriteFile(res.Kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}
	kubectl := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(o.Assets, "kubectl"), append([]string{"--kubeconfig", res.Kubeconfig}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, errb.String())
		}
		return out.String(), nil
	}

	say("starting a private PostgreSQL with LiteLLM's \"LiteLLM_UserTable\"")
	pg, err := pgtest.StartPrivate()
	if err != nil {
		return nil, err
	}
	defer func() { _ = pg.Close() }()
	dbURL, err := pg.NewDatabase(ctx)
	if err != nil {
		return nil, err
	}

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	secret = []byte(hex.EncodeToString(secret)) // 64 printable bytes
	secretFile := filepath.Join(o.Dir, "login-secrets")
	if err := os.WriteFile(secretFile, append(secret, '\n'), 0o600); err != nil {
		return nil, err
	}
	loginAddr := freeAddr()
	logPath := filepath.Join(o.Dir, "manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	say("starting the manager (log: %s), login server on http://%s", logPath, loginAddr)
	mgr, err := managerproc.Start(ctx, o.ManagerBin, []string{"--kubeconfig", res.Kubeconfig, "--metrics-bind-address", "0",
		"--login-insecure", "--login-bind-address", loginAddr, "--login-hmac-secret-file", secretFile, "--resync-period", "30s"},
		[]string{"ENABLE_WEBHOOKS=false", "DATABASE_URL=" + dbURL}, logFile, 60*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w (see %s)", err, logPath)
	}
	defer mgr.Stop(10 * time.Second)

	say("kubectl apply -f config/samples/  (Keycloak, Entra ID and strict RoleMappings, a break-glass ProxyUser)")
	out, err := kubectl("apply", "-f", filepath.Join(o.RepoRoot, "config", "samples"))
	if err != nil {
		return nil, err
	}
	fmt.Fprint(o.Out, indent(out))
	// LiteLLM is the only creator of user rows: the break-glass account gets
	// its row when an admin adds it in LiteLLM (/user/new); rolesync then
	// pins its role (roleOverride).
	say("adding the break-glass account in LiteLLM (its /user/new inserts the row; rolesync never creates rows)")
	if err := litellmSignUp(ctx, dbURL, "break-glass@example.com", "break-glass@example.com", "internal_user_viewer"); err != nil {
		return nil, fmt.Errorf("play LiteLLM's /user/new of the break-glass account: %w", err)
	}

	say("posting signed login events to POST /v1/namespaces/default/login-events")
	for i, l := range SampleLogins() {
		body, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("demo-%d-%d", time.Now().UnixNano(), i),
			"time": time.Now().UTC().Format(time.RFC3339Nano), "userID": l.UserID, "email": l.UserID, "issuer": l.Issuer, "claims": l.Claims, "namespace": "default"})
		if err := waitFor(ctx, 30*time.Second, func() error {
			l.Status, l.Answer, err = post("http://"+loginAddr+"/v1/namespaces/default/login-events", secret, body)
			if err == nil && l.Status == http.StatusServiceUnavailable {
				err = errors.New("mappings still loading")
			}
			return err
		}); err != nil {
			return nil, err
		}
		res.Logins = append(res.Logins, l)
		fmt.Fprintf(o.Out, "   %-18s %d  %s\n", l.UserID, l.Status, compact(l.Answer))
		if l.Status == http.StatusOK {
			// What the LiteLLM proxy does next: its SSO sign-up inserts the new
			// user's row with the role the hook returned; rolesync waits for it.
			role, _ := l.Answer["role"].(string)
			if err := litellmSignUp(ctx, dbURL, l.UserID, l.UserID, role); err != nil {
				return nil, fmt.Errorf("play LiteLLM's sign-up of %s: %w", l.UserID, err)
			}
		}
	}

	say("waiting for every ProxyUser to be synced to the database")
	if err := waitFor(ctx, 60*time.Second, func() error {
		out, err := kubectl("get", "proxyusers", "-n", "default", "-o", "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Synced\")].status}{\"\\n\"}{end}")
		if err != nil {
			return err
		}
		lines := strings.Fields(out)
		if len(lines) != 6 || strings.Count(out, "True") != 6 { // five admitted logins and the break-glass user
			return fmt.Errorf("synced: %q", out)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if res.ProxyUsers, err = kubectl("get", "proxyusers", "-n", "default", "-o", "wide"); err != nil {
		return nil, err
	}
	say("kubectl get proxyusers -o wide")
	fmt.Fprint(o.Out, indent(res.ProxyUsers))

	if res.Rows, err = rows(ctx, dbURL); err != nil {
		return nil, err
	}
	say(`SELECT user_id, user_role FROM "LiteLLM_UserTable"`)
	ids := make([]string, 0, len(res.Rows))
	for id := range res.Rows {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(o.Out, "   %-26s %s\n", id, res.Rows[id])
	}

	say("explore with kubectl:  export KUBECONFIG=%s; %s get proxyusers,rolemappings -A", res.Kubeconfig, filepath.Join(o.Assets, "kubectl"))
	say("the proxy database:    psql '%s'", dbURL)
	if o.Wait {
		say("running; press Ctrl-C to stop everything and remove what the demo started")
		<-ctx.Done()
		say("stopping")
	}
	return res, nil
}

func post(url string, secret, body []byte) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(authn.SignatureHeader, authn.Sign(secret, body, time.Now()))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = r.Body.Close() }()
	var out map[string]any
	if err := json.NewDecoder(r.Body).Decode(&out); err != nil {
		return r.StatusCode, nil, err
	}
	return r.StatusCode, out, nil
}

// litellmSignUp does what LiteLLM's SSO login does after its login hook
// answered: look the user up (user_id, then sso_user_id, then email) and
// insert a new row keyed by the SSO id only when none exists.
func litellmSignUp(ctx context.Context, dbURL, ssoID, email, role string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx, `INSERT INTO "LiteLLM_UserTable" (user_id, sso_user_id, user_email, user_role, updated_at)
		SELECT $1, $1, $2, $3, CURRENT_TIMESTAMP AT TIME ZONE 'UTC'
		WHERE NOT EXISTS (SELECT 1 FROM "LiteLLM_UserTable" WHERE user_id = $1 OR sso_user_id = $1 OR lower(user_email) = lower($2))`,
		ssoID, email, role)
	return err
}

func rows(ctx context.Context, dbURL string) (map[string]string, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close(ctx) }()
	rs, err := conn.Query(ctx, `SELECT user_id, coalesce(user_role, '') FROM "LiteLLM_UserTable"`)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for rs.Next() {
		var id, role string
		if err := rs.Scan(&id, &role); err != nil {
			return nil, err
		}
		out[id] = role
	}
	return out, rs.Err()
}

func compact(v map[string]any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func indent(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("   " + line + "\n")
	}
	return b.String()
}

func freeAddr() string {
	a, err := freeport.Addr()
	if err != nil {
		return "127.0.0.1:0"
	}
	return a
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
