package rolemap

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

func TestMaxClaimAgeExpiresRules(t *testing.T) {
	strict := mustCompile(t, `metadata: {name: strict, namespace: ns}
spec:
  claim: groups
  maxClaimAge: 1h
  onNoMatch: Deny
  rules: [{equals: admins, role: proxy_admin}]
`)
	lenient := mustCompile(t, `metadata: {name: lenient, namespace: ns}
spec:
  claim: groups
  maxClaimAge: 10m
  onNoMatch: Default
  defaultRole: internal_user_viewer
  rules: [{equals: admins, role: internal_user}]
`)
	claims := map[string]any{"groups": []any{"admins"}}
	e := NewEngine(strict)
	if d := e.EvaluateAged(claims, "", 59*time.Minute); d.Denied || d.Role != rolesyncv1.RoleProxyAdmin || d.Expired {
		t.Fatalf("fresh claims: %+v", d)
	}
	d := e.EvaluateAged(claims, "", 61*time.Minute)
	if !d.Denied || d.Reason != ReasonClaimsExpired || !d.Expired || !strings.Contains(d.Message(), "maxClaimAge") {
		t.Fatalf("expired claims under a Deny mapping: %+v (%s)", d, d.Message())
	}
	d = NewEngine(lenient).EvaluateAged(claims, "", 11*time.Minute)
	if d.Denied || d.Role != rolesyncv1.RoleInternalUserViewer || !strings.Contains(d.Message(), "older than maxClaimAge") {
		t.Fatalf("expired claims under a Default mapping: %+v (%s)", d, d.Message())
	}
	// Unaged evaluation (a login's own claims) never expires.
	if d := NewEngine(strict).Evaluate(claims, ""); d.Denied {
		t.Fatal("Evaluate must not age claims")
	}
	stated := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	both := NewEngine(strict, lenient)
	if at, ok := both.NextClaimExpiry("", stated, stated.Add(time.Minute)); !ok || !at.Equal(stated.Add(10*time.Minute)) {
		t.Fatalf("next expiry %v %v, want the lenient mapping's", at, ok)
	}
	if at, ok := both.NextClaimExpiry("", stated, stated.Add(30*time.Minute)); !ok || !at.Equal(stated.Add(time.Hour)) {
		t.Fatalf("next expiry after the first %v %v", at, ok)
	}
	if _, ok := both.NextClaimExpiry("", stated, stated.Add(2*time.Hour)); ok {
		t.Fatal("no expiry after the last")
	}
	short := &rolesyncv1.RoleMapping{}
	short.Name = "short"
	short.Spec.MaxClaimAge = &metav1.Duration{Duration: 5 * time.Second}
	if _, errs := Compile(short); !strings.Contains(errs.ToAggregate().Error(), "spec.maxClaimAge") {
		t.Fatalf("a maxClaimAge under 10s must be refused: %v", errs)
	}
}
