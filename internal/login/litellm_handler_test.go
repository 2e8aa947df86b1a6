package login

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// The LiteLLM handler's mappings: one per identity provider, scoped by
// issuer, reading the claims LiteLLM passes in extra_fields.
const (
	keycloakIssuerForHandler = "https://keycloak.example.com/realms/ai"
	entraIssuerForHandler    = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
	handlerMappings          = `metadata: {name: keycloak}
spec:
  issuer: ` + keycloakIssuerForHandler + `
  claim: resource_access.litellm.roles
  rules:
  - {equals: litellm-admin, role: proxy_admin}
  - {claim: groups, glob: "/ai/*", role: internal_user}
  onNoMatch: Deny
  allowedTeams: ["ai-*"]
  teams:
  - {claim: groups, regex: "/ai/(.+)", team: "ai-$1"}
---
metadata: {name: entra}
spec:
  issuer: ` + entraIssuerForHandler + `
  claim: roles
  rules:
  - {equals: LiteLLM.Admin, role: proxy_admin}
  - {equals: LiteLLM.Viewer, role: proxy_admin_viewer}
  - {claim: groups, equals: 0c9e6f5a-1111-4a2b-8c3d-222233334444, role: internal_user}
  onNoMatch: Deny
`
)

// TestLiteLLMHandler runs integrations/litellm's custom_sso handler with
// python3 against this package's real login server: Keycloak- and
// Entra-shaped logins get their mapped roles, a denied login is refused,
// and timeouts, 5xx and an unreachable server fail closed.
func TestLiteLLMHandler(t *testing.T) {
	needSuite(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required to test the LiteLLM handler (integrations/litellm): install python3 (3.11 or newer), e.g. apt-get install python3")
	}
	ns := newNamespace(t)
	for _, doc := range strings.Split(handlerMappings, "---\n") {
		withMapping(t, ns, doc)
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "integrations", "litellm")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-m", "unittest", "-v", "tests.test_rolesync_sso")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"ROLESYNC_TEST_URL="+baseURL,
		"ROLESYNC_TEST_NAMESPACE="+ns,
		"ROLESYNC_TEST_SECRET_FILE="+secretFile,
		"ROLESYNC_TEST_KEYCLOAK_ISSUER="+keycloakIssuerForHandler,
		"ROLESYNC_TEST_ENTRA_ISSUER="+entraIssuerForHandler,
		"PYTHONDONTWRITEBYTECODE=1",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest tests.test_rolesync_sso: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "skipped") || !strings.Contains(string(out), "AgainstTheLoginServer") {
		t.Fatalf("the handler's tests against the login server did not all run:\n%s", out)
	}

	// What the handler sent was recorded as LiteLLM's user: the nested
	// claims rebuilt from extra_fields, the team ids, the id and email.
	var list rolesyncv1.ProxyUserList
	if err := k8sClient.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	var ana *rolesyncv1.ProxyUser
	for i := range list.Items {
		if list.Items[i].Namespace == ns && list.Items[i].Spec.UserID == "kc-ana" {
			ana = &list.Items[i]
		}
	}
	if ana == nil {
		t.Fatal("no ProxyUser for kc-ana")
	}
	if ana.Spec.Issuer != keycloakIssuerForHandler || ana.Spec.Email != "kc-ana@example.com" || ana.Spec.Claims == nil {
		t.Fatalf("kc-ana's spec: %+v", ana.Spec)
	}
	var claims map[string]any
	if err := json.Unmarshal(ana.Spec.Claims.Raw, &claims); err != nil {
		t.Fatal(err)
	}
	roles, _ := claims["resource_access"].(map[string]any)["litellm"].(map[string]any)["roles"].([]any)
	if len(roles) == 0 || roles[0] != "litellm-admin" {
		t.Fatalf("stored claims %s: want resource_access.litellm.roles rebuilt from extra_fields", ana.Spec.Claims.Raw)
	}
}
