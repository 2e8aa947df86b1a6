package login

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/testing/idp"
)

// The login-tokens tests run against a real OpenID provider (idp: mockoidc
// on loopback) whose tokens are obtained by the authorization-code flow;
// the suite's server trusts it through --login-oidc-config (oidcConfig).

func tokensPath(ns string) string { return "/v1/namespaces/" + ns + "/login-tokens" }

func postIdPToken(t testing.TB, ns, tok string) reply {
	t.Helper()
	secretsUsed.Store(tok, true)
	secretsUsed.Store(tok[strings.LastIndexByte(tok, '.')+1:], true)
	return send(t, http.MethodPost, tokensPath(ns), "application/jwt", []byte(tok), nil)
}

// keycloakUser is a Keycloak-shaped ID token's claims: client roles under
// resource_access, groups as paths.
func keycloakUser(name string, roles, groups []string) idp.User {
	return idp.User{Subject: "f3c1-" + name, Extra: map[string]any{
		"preferred_username": name, "email": name + "@example.com", "email_verified": true,
		"resource_access": map[string]any{"litellm": map[string]any{"roles": roles}},
		"groups":          groups,
	}}
}

func login(t testing.TB, p *idp.Provider, u idp.User) idp.Tokens {
	t.Helper()
	tok, err := p.Login(u)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

const tokenMapping = `metadata: {name: idp}
spec:
  claim: resource_access.litellm.roles
  rules:
  - {equals: admin, role: proxy_admin}
  - {equals: viewer, role: proxy_admin_viewer}
  - {claim: groups, glob: "/ai/*", role: internal_user}
  onNoMatch: Deny
`

func TestProviderTokensAreMapped(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, tokenMapping)
	for _, tc := range []struct {
		user string
		u    idp.User
		want rolesyncv1.Role
	}{
		{"ana", keycloakUser("ana", []string{"admin"}, nil), rolesyncv1.RoleProxyAdmin},
		{"bo", keycloakUser("bo", []string{"viewer"}, []string{"/ai/team"}), rolesyncv1.RoleProxyAdminViewer},
		{"cy", keycloakUser("cy", nil, []string{"/ai/research"}), rolesyncv1.RoleInternalUser},
	} {
		r := postIdPToken(t, ns, login(t, provider, tc.u).IDToken)
		if r.status != http.StatusOK || r.resp.Role != tc.want || r.resp.UserID != tc.user {
			t.Fatalf("%s: %d %s, want 200 %s for userID %s (preferred_username)", tc.user, r.status, r.body, tc.want, tc.user)
		}
		if r.resp.Source == nil || r.resp.Source.RoleMapping != "idp" {
			t.Fatalf("%s: source %+v, want mapping idp", tc.user, r.resp.Source)
		}
	}
	// The ProxyUser holds the provider's issuer and the claims the mapping reads.
	var pu rolesyncv1.ProxyUser
	waitUntil(t, 30*time.Second, func() error {
		var list rolesyncv1.ProxyUserList
		if err := k8sClient.List(context.Background(), &list); err != nil {
			return err
		}
		for _, item := range list.Items {
			if item.Namespace == ns && item.Spec.UserID == "ana" {
				pu = item
				return nil
			}
		}
		return os.ErrNotExist
	})
	if pu.Spec.Issuer != provider.Issuer() || pu.Spec.Email != "ana@example.com" {
		t.Fatalf("ProxyUser spec %+v, want issuer %s and the email claim", pu.Spec, provider.Issuer())
	}
	// A denied user: 403 with who was denied.
	r := postIdPToken(t, ns, login(t, provider, keycloakUser("dee", []string{"none"}, []string{"/other"})).IDToken)
	if r.status != http.StatusForbidden || !r.err.Denied || r.err.UserID != "dee" {
		t.Fatalf("unmapped user: %d %s, want 403 denied for dee", r.status, r.body)
	}
	// The same token twice is a replay.
	tok := login(t, provider, keycloakUser("eve", []string{"viewer"}, nil)).IDToken
	if r := postIdPToken(t, ns, tok); r.status != http.StatusOK {
		t.Fatalf("first post: %d %s", r.status, r.body)
	}
	if r := postIdPToken(t, ns, tok); r.status != http.StatusConflict || r.err.Reason != ReasonReplay {
		t.Fatalf("second post of the same token: %d %s, want 409 %s", r.status, r.body, ReasonReplay)
	}
}

// resign re-signs tok's header and payload (edited by edit) with method
// and key: what a forger who lacks the provider's key can produce.
func resign(t testing.TB, tok string, method jwt.SigningMethod, key any, editHeader func(map[string]any), edit func(jwt.MapClaims)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	var hdr map[string]any
	var claims jwt.MapClaims
	for i, v := range []any{&hdr, &claims} {
		data, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatal(err)
		}
	}
	if edit != nil {
		edit(claims)
	}
	out := jwt.NewWithClaims(method, claims)
	for k, v := range hdr {
		if k != "alg" {
			out.Header[k] = v
		}
	}
	if editHeader != nil {
		editHeader(out.Header)
	}
	s, err := out.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestForgedAndMisScopedProviderTokensAreRefused(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, tokenMapping)
	admin := keycloakUser("mallory", []string{"admin"}, nil)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() string { return login(t, provider, admin).IDToken }
	for _, tc := range []struct {
		name   string
		token  func() string
		status int
		reason string
		says   string // in the error message: which check refused it
	}{
		{"issued for another client (wrong audience)", func() string { return login(t, otherAudience, admin).IDToken },
			http.StatusUnauthorized, ReasonBadToken, "wrong aud"},
		{"re-signed by another key under the provider's kid", func() string {
			return resign(t, fresh(), jwt.SigningMethodRS256, other, nil, nil)
		}, http.StatusUnauthorized, ReasonBadToken, "no key of the token's issuer verifies it"},
		{"alg switched to HS256", func() string {
			return resign(t, fresh(), jwt.SigningMethodHS256, provider.PublicKeyPEM(), nil, nil)
		}, http.StatusUnauthorized, ReasonBadToken, "no key of the token's issuer verifies it"},
		{"alg none", func() string {
			return resign(t, fresh(), jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, nil)
		}, http.StatusUnauthorized, ReasonBadToken, ""},
		{"another issuer's token", func() string { return login(t, untrusted, admin).IDToken }, http.StatusUnauthorized, ReasonBadToken, "not a trusted provider"},
		{"claims edited after signing", func() string {
			tok := fresh()
			parts := strings.Split(tok, ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			payload = []byte(strings.Replace(string(payload), `"mallory"`, `"root"`, 1))
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
		}, http.StatusUnauthorized, ReasonBadToken, "no key of the token's issuer verifies it"},
		{"expired", func() string {
			provider.Shift(-2 * time.Hour) // issued two hours ago, valid for ten minutes
			defer provider.Shift(2 * time.Hour)
			return fresh()
		}, http.StatusUnauthorized, ReasonBadToken, "token expired"},
		{"issued more than 5 minutes ago, not yet expired", func() string {
			provider.Shift(-7 * time.Minute)
			defer provider.Shift(7 * time.Minute)
			return fresh()
		}, http.StatusUnauthorized, ReasonClockSkew, "iat"},
		{"namespace not allowed for the issuer", func() string { return login(t, scoped, admin).IDToken }, http.StatusForbidden, ReasonNamespaceNotAllowed, ns},
		{"not a JWT", func() string { return "not.a.jwt" }, http.StatusUnauthorized, ReasonBadToken, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, ns)
			r := postIdPToken(t, ns, tc.token())
			if r.status != tc.status || r.err.Reason != tc.reason || !strings.Contains(r.err.Error, tc.says) {
				t.Fatalf("%d %s, want %d %s saying %q", r.status, r.body, tc.status, tc.reason, tc.says)
			}
			if after := snapshot(t, ns); len(after) != len(before) {
				t.Fatalf("a refused token wrote ProxyUsers: %v -> %v", before, after)
			}
		})
	}
	// The scoped issuer's tokens are good in the namespace it allows.
	if _, ok := registry.Observed(scopedNamespace, "idp"); !ok {
		withMapping(t, scopedNamespace, tokenMapping)
	}
	if r := postIdPToken(t, scopedNamespace, login(t, scoped, keycloakUser("sam", []string{"viewer"}, nil)).IDToken); r.status != http.StatusOK || r.resp.Role != rolesyncv1.RoleProxyAdminViewer {
		t.Fatalf("scoped issuer in its own namespace: %d %s", r.status, r.body)
	}
}

func TestProviderKeyRotationAndOutage(t *testing.T) {
	needSuite(t)
	// Its own provider: rotating or stopping the suite's would disturb the
	// other tests.
	p, err := idp.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Stop() }()
	ns := newNamespace(t)
	withMapping(t, ns, tokenMapping)
	addIssuer(t, p.Issuer(), p.ClientID(), "")
	u := keycloakUser("rita", []string{"viewer"}, nil)
	waitUntil(t, 30*time.Second, func() error { // discovery of the new issuer
		if r := postIdPToken(t, ns, login(t, p, u).IDToken); r.status != http.StatusOK {
			return &tokenRefused{r}
		}
		return nil
	})
	oldKID := p.KeyID()
	if err := p.Rotate(); err != nil {
		t.Fatal(err)
	}
	if p.KeyID() == oldKID {
		t.Fatal("rotation kept the key id")
	}
	// A token under the new kid: the unknown kid re-fetches the keys, no restart.
	if r := postIdPToken(t, ns, login(t, p, u).IDToken); r.status != http.StatusOK {
		t.Fatalf("token after the provider rotated its key: %d %s", r.status, r.body)
	}
	// The provider goes down: its tokens keep verifying with the cached keys.
	tok := login(t, p, keycloakUser("sol", []string{"admin"}, nil)).IDToken
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if r := postIdPToken(t, ns, tok); r.status != http.StatusOK || r.resp.Role != rolesyncv1.RoleProxyAdmin {
		t.Fatalf("provider down, cached keys: %d %s", r.status, r.body)
	}
}

type tokenRefused struct{ r reply }

func (e *tokenRefused) Error() string { return string(e.r.body) }

func TestLoginTokensNeedsTheJWTMediaType(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	r := send(t, http.MethodPost, tokensPath(ns), "application/json", []byte(`{}`), nil)
	if r.status != http.StatusUnsupportedMediaType || r.err.Reason != ReasonMediaType {
		t.Fatalf("%d %s, want 415", r.status, r.body)
	}
}
