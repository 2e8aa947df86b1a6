package demo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestWalkthrough runs the `make demo` flow non-interactively — real
// control plane, PostgreSQL, manager binary, kubectl apply of the samples,
// signed logins — and checks the answers, what `kubectl get proxyusers -o
// wide` prints, and the rows in LiteLLM's table.
func TestWalkthrough(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run with `make test`")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "manager")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/manager").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := Run(ctx, Options{Out: &out, Assets: assets, ManagerBin: bin, RepoRoot: filepath.Join("..", ".."), Dir: dir})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())

	want := map[string]struct {
		status int
		role   string
		source string
	}{
		"alice@example.com": {200, "proxy_admin", "keycloak#0 resource_access.litellm.roles=litellm-admin"},
		"frank@example.com": {200, "internal_user", "keycloak#2 resource_access.litellm.roles=team-search"},
		"bob@example.com":   {200, "internal_user", "entra#0 groups=sg-ai-search-developers"},
		"carol@example.com": {200, "internal_user_viewer", "entra#1 groups=SG-AI-Search-Readers"},
		"dan@example.com":   {200, "internal_user", "strict#0 expression"},
		"eve@example.com":   {403, "", ""},
	}
	for _, l := range res.Logins {
		w := want[l.UserID]
		if l.Status != w.status {
			t.Errorf("%s: status %d, want %d (%v)", l.UserID, l.Status, w.status, l.Answer)
			continue
		}
		if w.status != 200 {
			if l.Answer["reason"] != "NoMatch" {
				t.Errorf("%s: %v", l.UserID, l.Answer)
			}
			continue
		}
		src, _ := l.Answer["source"].(map[string]any)
		if l.Answer["role"] != w.role || src["description"] != w.source {
			t.Errorf("%s: answered %v, want %s from %s", l.UserID, l.Answer, w.role, w.source)
		}
		// kubectl prints the same role and source on the user's line.
		line := regexp.MustCompile(`(?m)^\S+\s+` + regexp.QuoteMeta(l.UserID) + `\s+` + w.role + `\s+` + regexp.QuoteMeta(w.source) + `\s+True\s`)
		if !line.MatchString(res.ProxyUsers) {
			t.Errorf("kubectl get proxyusers has no line %q for %s:\n%s", w.role+" "+w.source, l.UserID, res.ProxyUsers)
		}
		if res.Rows[l.UserID] != w.role {
			t.Errorf("row of %s holds %q, want %q", l.UserID, res.Rows[l.UserID], w.role)
		}
	}
	if _, ok := res.Rows["eve@example.com"]; ok {
		t.Error("a denied user got a row")
	}
	if !regexp.MustCompile(`(?m)^break-glass-admin\s+break-glass@example.com\s+proxy_admin\s+override\s+True`).MatchString(res.ProxyUsers) {
		t.Errorf("break-glass user not shown with its override:\n%s", res.ProxyUsers)
	}
	if res.Rows["break-glass@example.com"] != "proxy_admin" {
		t.Errorf("break-glass row %q", res.Rows["break-glass@example.com"])
	}
	if _, err := os.Stat(res.Kubeconfig); err != nil {
		t.Errorf("kubeconfig: %v", err)
	}
}
