package scim

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// groupsMapping maps directory groups (the groups claim) to roles.
const groupsMapping = `metadata: {name: directory}
spec:
  claim: groups
  onNoMatch: Deny
  rules:
  - {equals: LiteLLM-Admins, role: proxy_admin}
  - {equals: LiteLLM-Users, role: internal_user}
`

// filterPath is "/Users?filter=<f>" (or Groups) with the filter escaped.
func filterPath(resource, f string, extra ...string) string {
	p := "/" + resource + "?filter=" + url.QueryEscape(f)
	for _, e := range extra {
		p += "&" + e
	}
	return p
}

// entraUser is the user Entra ID's provisioning service creates
// (Microsoft's SCIM guide, "Create User"): the enterprise extension, a
// work email, name parts, an empty roles list.
func entraUser(userName, email, externalID string) map[string]any {
	return map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
		"externalId": externalID,
		"userName":   userName,
		"active":     true,
		"emails":     []any{map[string]any{"primary": true, "type": "work", "value": email}},
		"meta":       map[string]any{"resourceType": "User"},
		"name":       map[string]any{"formatted": "Alice Smith", "familyName": "Smith", "givenName": "Alice"},
		"roles":      []any{},
	}
}

func patchOps(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
}

// TestEntraProvisioningSequence replays what Entra ID's provisioning
// service sends (query, create, group create, member add by value list,
// capitalised ops, booleans as "False"/"True" strings, emails[type eq
// "work"].value paths, member removal by value list, delete) and checks the
// ProxyUser, the LiteLLM row and the user's key after each step.
func TestEntraProvisioningSequence(t *testing.T) {
	needSuite(t)
	const ns = "scim-entra"
	withMapping(t, ns, groupsMapping)
	const userName = "alice@contoso.com"

	// Entra first asks whether the user exists.
	r := call(t, http.MethodGet, ns, filterPath("Users", `userName eq "`+userName+`"`), nil).must(t, "query user", http.StatusOK)
	if r.body["totalResults"] != float64(0) {
		t.Fatalf("query of a new user: %s", r.raw)
	}
	created := call(t, http.MethodPost, ns, "/Users", entraUser(userName, userName, "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef")).must(t, "create user", http.StatusCreated)
	id := created.str("id")
	if id == "" || created.body["userName"] != userName || created.body["active"] != true {
		t.Fatalf("create: %s", created.raw)
	}
	// A retried create answers 409 uniqueness (Entra then queries again).
	dup := call(t, http.MethodPost, ns, "/Users", entraUser("ALICE@contoso.com", userName, "x")).must(t, "duplicate userName", http.StatusConflict)
	if dup.str("scimType") != "uniqueness" {
		t.Fatalf("duplicate: %s", dup.raw)
	}
	if r := call(t, http.MethodGet, ns, filterPath("Users", `userName eq "Alice@Contoso.com"`), nil).must(t, "query again", http.StatusOK); r.body["totalResults"] != float64(1) {
		t.Fatalf("userName is case-insensitive: %s", r.raw)
	}
	pu := getUser(t, ns, id)
	if pu.Spec.UserID != userName || pu.Spec.Email != userName || pu.Spec.Issuer != entraIssuer || pu.Spec.Directory == nil || !pu.Spec.Directory.Active {
		t.Fatalf("the ProxyUser SCIM made: %+v", pu.Spec)
	}
	// LiteLLM made the row at the user's first login (and a key).
	litellmRow(t, userName, userName, "sk-alice")

	// The group, then its member (Entra: capitalised "Add", a value list).
	r = call(t, http.MethodGet, ns, filterPath("Groups", `displayName eq "LiteLLM-Admins"`, "excludedAttributes=members"), nil).must(t, "query group", http.StatusOK)
	if r.body["totalResults"] != float64(0) {
		t.Fatalf("query group: %s", r.raw)
	}
	g := call(t, http.MethodPost, ns, "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "LiteLLM-Admins", "meta": map[string]any{"resourceType": "Group"}}).must(t, "create group", http.StatusCreated)
	gid := g.str("id")
	call(t, http.MethodPatch, ns, "/Groups/"+gid, patchOps(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"$ref": nil, "value": id}}})).
		must(t, "add member", http.StatusOK, http.StatusNoContent)
	waitRow(t, userName, "sk-alice", rowState{role: "proxy_admin"})
	eventually(t, 10*time.Second, func() error { // status is written right after the row
		if pu := getUser(t, ns, id); pu.Status.Source == nil || !pu.Status.Source.FromDirectory {
			return fmt.Errorf("status.source does not name the directory: %+v", pu.Status.Source)
		}
		return nil
	})
	if r := call(t, http.MethodGet, ns, "/Groups/"+gid, nil).must(t, "get group", http.StatusOK); fmt.Sprint(r.body["members"]) == "[]" {
		t.Fatalf("the group lists no member: %s", r.raw)
	}
	if r := call(t, http.MethodGet, ns, "/Groups/"+gid+"?excludedAttributes=members", nil).must(t, "get group without members", http.StatusOK); r.body["members"] != nil {
		t.Fatalf("excludedAttributes=members: %s", r.raw)
	}

	// Entra's user update: an emails[type eq "work"].value path, a name part.
	call(t, http.MethodPatch, ns, "/Users/"+id, patchOps(
		map[string]any{"op": "Replace", "path": `emails[type eq "work"].value`, "value": "alice.smith@contoso.com"},
		map[string]any{"op": "Replace", "path": "name.familyName", "value": "Smith-Jones"},
	)).must(t, "update user", http.StatusOK, http.StatusNoContent)
	if e := getUser(t, ns, id).Spec.Email; e != "alice.smith@contoso.com" {
		t.Fatalf("email after the update: %q", e)
	}

	// Member removal by value list: the groups claim is the directory's
	// alone, so the role goes (the mapping denies) within seconds.
	removed := call(t, http.MethodPatch, ns, "/Groups/"+gid, patchOps(map[string]any{"op": "Remove", "path": "members", "value": []any{map[string]any{"value": id}}})).
		must(t, "remove member", http.StatusOK, http.StatusNoContent)
	waitRow(t, userName, "sk-alice", rowState{role: "internal_user_viewer", inactive: true})
	t.Logf("membership removal reached the LiteLLM row %v after the SCIM answer", time.Since(removed.took).Round(time.Millisecond))

	// Back in the group, then deactivated with a string boolean (Entra).
	call(t, http.MethodPatch, ns, "/Groups/"+gid, patchOps(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": id}}})).
		must(t, "add member again", http.StatusOK, http.StatusNoContent)
	waitRow(t, userName, "sk-alice", rowState{role: "proxy_admin"})
	call(t, http.MethodPatch, ns, "/Users/"+id, patchOps(map[string]any{"op": "Replace", "path": "active", "value": "False"})).
		must(t, "deactivate", http.StatusOK, http.StatusNoContent)
	// Deprovisioned: demoted, deactivated, the key blocked although
	// --key-revocation is off.
	waitRow(t, userName, "sk-alice", rowState{role: "internal_user_viewer", inactive: true, keyBlocked: true})
	eventually(t, 10*time.Second, func() error { // status is written right after the row
		if pu := getUser(t, ns, id); reasonOf(pu, rolesyncv1.ConditionDenied) != rolesyncv1.ReasonDeprovisioned {
			return fmt.Errorf("a deprovisioned user: conditions %+v", pu.Status.Conditions)
		}
		return nil
	})
	// Audited: LiteLLM's audit log says the directory did it.
	for _, says := range []string{"(directory)", "directory deprovisioned the user"} {
		if n := auditRows(t, userName, says); n == 0 {
			t.Fatalf("no LiteLLM audit-log row for %s says %q", userName, says)
		}
	}
	// Reactivated: exactly what rolesync set is lifted.
	call(t, http.MethodPatch, ns, "/Users/"+id, patchOps(map[string]any{"op": "Replace", "path": "active", "value": "True"})).
		must(t, "reactivate", http.StatusOK, http.StatusNoContent)
	waitRow(t, userName, "sk-alice", rowState{role: "proxy_admin"})

	// Delete: gone for SCIM at once; the row demoted and the key blocked
	// before the ProxyUser goes.
	call(t, http.MethodDelete, ns, "/Users/"+id, nil).must(t, "delete user", http.StatusNoContent)
	call(t, http.MethodGet, ns, "/Users/"+id, nil).must(t, "get deleted user", http.StatusNotFound)
	eventually(t, 30*time.Second, func() error {
		err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: id}, &rolesyncv1.ProxyUser{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("the deleted user's ProxyUser is still there (%w)", err)
		}
		return nil
	})
	if got := readRow(t, userName, "sk-alice"); got != (rowState{role: "internal_user_viewer", inactive: true, keyBlocked: true}) {
		t.Fatalf("after delete the row is %+v", got)
	}
}

func reasonOf(pu *rolesyncv1.ProxyUser, condition string) string {
	for _, c := range pu.Status.Conditions {
		if c.Type == condition {
			return c.Reason
		}
	}
	return ""
}

// waitRow waits until the LiteLLM row and key are as want.
func waitRow(t testing.TB, userID, key string, want rowState) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		if got := readRow(t, userID, key); got != want {
			return fmt.Errorf("row %s is %+v, want %+v", userID, got, want)
		}
		return nil
	})
}

// auditRows counts LiteLLM audit-log rows about the user whose values
// contain says.
func auditRows(t testing.TB, userID, says string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM "LiteLLM_AuditLog" WHERE object_id = $1 AND updated_values::text LIKE '%' || $2 || '%'`,
		userID, says).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
