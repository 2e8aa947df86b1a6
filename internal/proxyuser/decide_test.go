package proxyuser

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// engine: groups "admins" → proxy_admin, "platform" → internal_user,
// nothing else denied; policy is the mapping's syncPolicy.
func engine(t *testing.T, policy rolesyncv1.SyncPolicy) *rolemap.Engine {
	t.Helper()
	rm := &rolesyncv1.RoleMapping{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "m", Generation: 1}}
	rm.Spec.Claim = "groups"
	rm.Spec.Rules = []rolesyncv1.RoleRule{{ClaimMatcher: rolesyncv1.ClaimMatcher{Equals: ptr.To("admins")}, Role: rolesyncv1.RoleProxyAdmin}, {ClaimMatcher: rolesyncv1.ClaimMatcher{Equals: ptr.To("platform")}, Role: rolesyncv1.RoleInternalUser}}
	rm.Spec.OnNoMatch = rolesyncv1.OnNoMatchDeny
	if policy != "" {
		rm.Spec.SyncPolicy = policy
	}
	m, errs := rolemap.Compile(rm)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	return rolemap.NewEngine(m)
}

func groups(g ...string) map[string]any {
	l := make([]any, len(g))
	for i, s := range g {
		l[i] = s
	}
	return map[string]any{"groups": l}
}

func TestDecide(t *testing.T) {
	every, first := engine(t, ""), engine(t, rolesyncv1.SyncPolicyFirstLoginOnly)
	cases := []struct {
		name       string
		in         Input
		role       rolesyncv1.Role
		denied     bool
		keepStored bool
	}{
		{"stored claims (controller)", Input{Engine: every, Stored: groups("admins")}, rolesyncv1.RoleProxyAdmin, false, false},
		{"override over a denial", Input{Engine: every, Stored: groups("sales"), Override: ptr.To(rolesyncv1.RoleInternalUser)}, rolesyncv1.RoleInternalUser, false, false},
		{"new user's login", Input{Engine: every, Login: groups("platform")}, rolesyncv1.RoleInternalUser, false, false},
		{"login replaces stored claims", Input{Engine: every, Existing: true, Stored: groups("admins"), Login: groups("platform")}, rolesyncv1.RoleInternalUser, false, false},
		{"denied login of an existing user", Input{Engine: every, Existing: true, Stored: groups("admins"), Login: groups("sales")}, "", true, false},
		{"FirstLoginOnly keeps the stored claims", Input{Engine: first, Existing: true, Stored: groups("platform"), Login: groups("admins")}, rolesyncv1.RoleInternalUser, false, true},
		{"stale login answers its own lower claims", Input{Engine: every, Existing: true, Stale: true, Stored: groups("admins"), Login: groups("platform")}, rolesyncv1.RoleInternalUser, false, true},
		{"stale login never answers more than stored", Input{Engine: every, Existing: true, Stale: true, Stored: groups("platform"), Login: groups("admins")}, rolesyncv1.RoleInternalUser, false, true},
		{"stale login whose claims grant nothing", Input{Engine: every, Existing: true, Stale: true, Stored: groups("admins"), Login: groups("sales")}, "", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Namespace, tc.in.Issuer = "ns", "https://idp"
			d := Decide(tc.in)
			if d.Role != tc.role || d.Denied != tc.denied || d.KeepStored != tc.keepStored {
				t.Fatalf("got role %q denied %v keepStored %v", d.Role, d.Denied, d.KeepStored)
			}
		})
	}
}
