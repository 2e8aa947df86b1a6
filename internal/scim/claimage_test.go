package scim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxyuser"
)

// TestClaimsAgeOut: a mapping's maxClaimAge makes claims older than it
// match none of its rules; each user is re-decided at its own expiry (a
// timer: the suite's resync is 30 s), and a directory update is a fresh
// statement that renews them.
func TestClaimsAgeOut(t *testing.T) {
	needSuite(t)
	const ns = "scim-speed"
	withMapping(t, ns, `metadata: {name: aging}
spec:
  claim: groups
  maxClaimAge: 12s
  onNoMatch: Deny
  rules:
  - {equals: Engineering, role: internal_user}
`)
	// The CRD refuses a maxClaimAge under 10s.
	short := &rolesyncv1.RoleMapping{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "too-short"},
		Spec: rolesyncv1.RoleMappingSpec{Claim: "groups", MaxClaimAge: &metav1.Duration{Duration: 5 * time.Second}}}
	if err := k8sClient.Create(context.Background(), short); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "maxClaimAge must be at least 10s") {
		t.Fatalf("a maxClaimAge of 5s: %v", err)
	}
	// A login's claims, stated now.
	claims, _ := json.Marshal(map[string]any{"groups": []any{"Engineering"}})
	now := metav1.NewMicroTime(time.Now())
	pu := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: proxyuser.Name(entraIssuer, "ageing")},
		Spec: rolesyncv1.ProxyUserSpec{UserID: "ageing", Issuer: entraIssuer, LastLoginTime: &now, Claims: &apiextensionsv1.JSON{Raw: claims}}}
	if err := k8sClient.Create(context.Background(), pu); err != nil {
		t.Fatal(err)
	}
	litellmRow(t, "ageing", "", "sk-ageing")
	waitRow(t, "ageing", "sk-ageing", rowState{role: "internal_user"})
	granted := time.Now()
	eventually(t, 25*time.Second, func() error {
		got := getUser(t, ns, pu.Name)
		if reasonOf(got, rolesyncv1.ConditionDenied) != rolesyncv1.ReasonClaimsExpired {
			return fmt.Errorf("not expired yet: %+v", got.Status.Conditions)
		}
		return nil
	})
	expiredAfter := time.Since(now.Time)
	waitRow(t, "ageing", "sk-ageing", rowState{role: "internal_user_viewer", inactive: true})
	if expiredAfter < 12*time.Second {
		t.Fatalf("denied %v after the login, before maxClaimAge", expiredAfter)
	}
	t.Logf("claims stated at login expired %v after it (maxClaimAge 12s; granted for %v)", expiredAfter.Round(100*time.Millisecond), time.Since(granted).Round(100*time.Millisecond))

	// A directory user's group change is a fresh statement.
	u := call(t, http.MethodPost, ns, "/Users", oktaUser("fresh@example.com", "fresh")).must(t, "create", http.StatusCreated)
	call(t, http.MethodPost, ns, "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Engineering",
		"members": []any{map[string]any{"value": u.str("id")}}}).must(t, "group", http.StatusCreated)
	eventually(t, 10*time.Second, func() error {
		if got := getUser(t, ns, u.str("id")); got.Status.Role != rolesyncv1.RoleInternalUser {
			return fmt.Errorf("the directory's fresh groups grant nothing yet: %+v", got.Status)
		}
		return nil
	})
}
