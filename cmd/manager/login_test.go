package main

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
	"testing"
	"time"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/login"
	"github.com/rolesync/rolesync/internal/login/authn"
	"github.com/rolesync/rolesync/internal/proxyuser"
)

// TestManagerServesLoginEvents runs the binary with the login server on
// (HMAC, plain HTTP on localhost), posts a signed event and checks the
// answer and the ProxyUser; then cuts the manager off the apiserver and
// checks that an event gets 503 with Retry-After and writes nothing.
func TestManagerServesLoginEvents(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createKeycloakMapping(t, ns)
	secret := "manager-test-secret-0123456789abcdef0123"
	secretFile := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proxy := proxyToAPIServer(t)
	loginAddr := freeAddr(t)
	m := startManager(t, "https://"+proxy.Addr, nil, "--login-insecure", "--login-bind-address", loginAddr,
		"--login-hmac-secret-file", secretFile)
	waitFor(t, 30*time.Second, m.logs, func() error {
		if !strings.Contains(m.logs.String(), "plain HTTP") {
			return fmt.Errorf("no warning about --login-insecure yet")
		}
		return nil
	})
	postIn := func(eventNS, id, user string) (int, map[string]any, http.Header) {
		ev := map[string]any{"id": id, "time": time.Now().UTC().Format(time.RFC3339Nano), "userID": user,
			"issuer": "https://idp.example.com", "claims": map[string]any{"resource_access": map[string]any{"litellm": map[string]any{"roles": []any{"team-x"}}}}}
		if eventNS != "" {
			ev["namespace"] = eventNS
		}
		body, _ := json.Marshal(ev)
		req, _ := http.NewRequest(http.MethodPost, "http://"+loginAddr+"/v1/namespaces/"+ns+"/login-events", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(authn.SignatureHeader, authn.Sign([]byte(secret), body, time.Now()))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		data, _ := io.ReadAll(res.Body)
		var out map[string]any
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%d %s", res.StatusCode, data)
		}
		return res.StatusCode, out, res.Header
	}
	post := func(id, user string) (int, map[string]any, http.Header) { return postIn(ns, id, user) }
	var status int
	var out map[string]any
	waitFor(t, 30*time.Second, m.logs, func() error { // until the mapping is loaded
		status, out, _ = post(fmt.Sprintf("ev-%d", time.Now().UnixNano()), "zoe")
		if status != http.StatusOK {
			return fmt.Errorf("%d %v", status, out)
		}
		return nil
	})
	if out["role"] != "internal_user" || out["denied"] != false {
		t.Fatalf("response %v", out)
	}
	// --login-require-namespace is on by default: an event that signs no
	// namespace is refused, naming the field.
	if status, out, _ := postIn("", "ev-no-namespace", "nobody"); status != http.StatusUnauthorized ||
		out["reason"] != login.ReasonNamespaceRequired || !strings.Contains(fmt.Sprint(out["error"]), "namespace") {
		t.Fatalf("an event without namespace under the default flags: %d %v", status, out)
	}
	name := proxyuser.Name("https://idp.example.com", "zoe")
	waitFor(t, 30*time.Second, m.logs, func() error {
		pu := &rolesyncv1.ProxyUser{}
		if err := k8s.Get(ctx, keyOf(ns, name), pu); err != nil {
			return err
		}
		if pu.Status.Role != rolesyncv1.RoleInternalUser {
			return fmt.Errorf("status role %q", pu.Status.Role)
		}
		return nil
	})

	// The apiserver goes away: 503, Retry-After, nothing written.
	if err := proxy.Stop(); err != nil {
		t.Fatal(err)
	}
	status, out, header := post("ev-outage", "yuri")
	if status != http.StatusServiceUnavailable || out["reason"] != login.ReasonUnavailable || header.Get("Retry-After") == "" {
		t.Fatalf("during the outage: %d %v %v", status, out, header)
	}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	pu := &rolesyncv1.ProxyUser{}
	if err := k8s.Get(ctx, keyOf(ns, proxyuser.Name("https://idp.example.com", "yuri")), pu); err == nil {
		t.Fatal("a ProxyUser was written during the outage")
	}
	// The same event id may be retried: a 503 did not consume it.
	waitFor(t, 60*time.Second, m.logs, func() error {
		if status, out, _ = post("ev-outage", "yuri"); status != http.StatusOK {
			return fmt.Errorf("retry after the outage: %d %v", status, out)
		}
		return nil
	})
}
