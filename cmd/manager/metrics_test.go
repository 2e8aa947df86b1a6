package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestMetricsNeedAnAuthorizedToken runs the manager binary with its default
// secure metrics: HTTPS, and only bearer tokens the apiserver authenticates
// and authorizes for GET /metrics get the metrics.
func TestMetricsNeedAnAuthorizedToken(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	token := func(name string) string {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if err := k8s.Create(ctx, sa); err != nil {
			t.Fatal(err)
		}
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(600))}}
		if err := k8s.SubResource("token").Create(ctx, sa, tr); err != nil {
			t.Fatalf("token for %s: %v", name, err)
		}
		return tr.Status.Token
	}
	reader, stranger := token("scraper"), token("stranger")
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader-" + ns},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader-" + ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "scraper"}}}
	if err := k8s.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, binding); _ = k8s.Delete(ctx, role) })

	addr := freeAddr(t)
	m := startManager(t, cfg.Host, nil, "--metrics-bind-address", addr)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the manager's certificate is self-signed
	get := func(scheme, tok string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, scheme+"://"+addr+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	waitFor(t, 30*time.Second, m.logs, func() error {
		code, body, err := get("https", reader)
		if err != nil {
			return err
		}
		if code != http.StatusOK || !strings.Contains(body, "rolesync_login_events_total") && !strings.Contains(body, "controller_runtime_") {
			return fmt.Errorf("authorized scrape: %d", code)
		}
		return nil
	})
	if code, _, err := get("https", ""); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("scrape without a token: %d %v", code, err)
	}
	// controller-runtime's filter answers a token the TokenReview rejects
	// with 500 ("Authentication failed"): refused either way, no metrics.
	if code, body, err := get("https", "not-a-token"); err != nil || code == http.StatusOK || strings.Contains(body, "controller_runtime_") {
		t.Fatalf("scrape with a forged token: %d %v", code, err)
	}
	if code, _, err := get("https", stranger); err != nil || code != http.StatusForbidden {
		t.Fatalf("scrape by an unauthorized ServiceAccount: %d %v", code, err)
	}
	if code, _, err := get("http", reader); err == nil && code == http.StatusOK {
		t.Fatal("metrics served over plain HTTP")
	}
}

func ptrTo[T any](v T) *T { return &v }
