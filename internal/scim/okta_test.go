package scim

import (
	"net/http"
	"strings"
	"testing"
)

// oktaUser is the user Okta's SCIM client creates (Okta's SCIM 2.0 guide,
// "Create the user"): name, emails, a password it may send, active.
func oktaUser(userName, given string) map[string]any {
	return map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName":    userName,
		"name":        map[string]any{"givenName": given, "familyName": "Okta"},
		"emails":      []any{map[string]any{"primary": true, "value": userName, "type": "work"}},
		"displayName": given + " Okta",
		"locale":      "en-US",
		"externalId":  "00u" + given,
		"groups":      []any{},
		"password":    "1mz050nq",
		"active":      true,
	}
}

// TestOktaProvisioningSequence replays Okta's sequence: the existence
// check with paging parameters, create, full PUT of a user, group create
// and full PUT with members, a path-less rename carrying the id, member
// removal by members[value eq "…"], deactivation by a path-less
// {"active": false}, paging, and retried requests (idempotent).
func TestOktaProvisioningSequence(t *testing.T) {
	needSuite(t)
	const ns = "scim-okta"
	withMapping(t, ns, `metadata: {name: directory}
spec:
  claim: groups
  onNoMatch: Deny
  rules:
  - {equals: Engineering, role: internal_user}
  - {equals: Platform Admins, role: proxy_admin}
`)
	r := call(t, http.MethodGet, ns, filterPath("Users", `userName eq "bob@example.com"`, "startIndex=1", "count=100"), nil).must(t, "user exists?", http.StatusOK)
	if r.body["totalResults"] != float64(0) || r.body["startIndex"] != float64(1) {
		t.Fatalf("query: %s", r.raw)
	}
	var ids []string
	for _, given := range []string{"bob", "carol", "dan"} {
		c := call(t, http.MethodPost, ns, "/Users", oktaUser(given+"@example.com", given)).must(t, "create "+given, http.StatusCreated)
		ids = append(ids, c.str("id"))
		litellmRow(t, given+"@example.com", given+"@example.com", "sk-"+given)
	}
	bob := ids[0]
	// Paging: 3 users, one per page.
	p := call(t, http.MethodGet, ns, "/Users?startIndex=2&count=1", nil).must(t, "page 2", http.StatusOK)
	if p.body["totalResults"] != float64(3) || p.body["itemsPerPage"] != float64(1) || p.body["startIndex"] != float64(2) {
		t.Fatalf("paging: %s", p.raw)
	}
	if res, _ := p.body["Resources"].([]any); len(res) != 1 || res[0].(map[string]any)["id"] != ids[1] {
		t.Fatalf("page 2 is not the second user: %s", p.raw)
	}
	// Okta's full PUT of a user.
	put := oktaUser("bob@example.com", "bob")
	put["id"] = bob
	put["displayName"] = "Robert Okta"
	if r := call(t, http.MethodPut, ns, "/Users/"+bob, put).must(t, "put user", http.StatusOK); r.body["displayName"] != "Robert Okta" {
		t.Fatalf("put: %s", r.raw)
	}

	// A group with members, created then replaced whole (PUT with members).
	g := call(t, http.MethodPost, ns, "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": "Engineering", "members": []any{}}).must(t, "create group", http.StatusCreated)
	gid := g.str("id")
	members := func(ids ...string) []any {
		out := []any{}
		for _, id := range ids {
			out = append(out, map[string]any{"value": id, "display": id})
		}
		return out
	}
	call(t, http.MethodPut, ns, "/Groups/"+gid, map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"id": gid, "displayName": "Engineering", "members": members(ids...)}).must(t, "put group", http.StatusOK)
	for _, given := range []string{"bob", "carol", "dan"} {
		waitRow(t, given+"@example.com", "sk-"+given, rowState{role: "internal_user"})
	}
	// A retried PATCH adding a member already there writes nothing.
	before := getUser(t, ns, bob).Generation // spec writes (the controller writes status meanwhile)
	add := patchOps(map[string]any{"op": "add", "path": "members", "value": members(bob)})
	for range 2 {
		call(t, http.MethodPatch, ns, "/Groups/"+gid, add).must(t, "retried add", http.StatusOK, http.StatusNoContent)
	}
	if after := getUser(t, ns, bob).Generation; after != before {
		t.Fatalf("a retried add wrote the member (generation %d -> %d)", before, after)
	}

	// The full PUT now drops dan: his role goes.
	call(t, http.MethodPut, ns, "/Groups/"+gid, map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"id": gid, "displayName": "Engineering", "members": members(bob, ids[1])}).must(t, "put group without dan", http.StatusOK)
	waitRow(t, "dan@example.com", "sk-dan", rowState{role: "internal_user_viewer", inactive: true})

	// Okta renames a group with a path-less replace that carries the id:
	// the members' groups claim follows.
	call(t, http.MethodPatch, ns, "/Groups/"+gid, patchOps(map[string]any{"op": "replace", "value": map[string]any{"id": gid, "displayName": "Platform Admins"}})).
		must(t, "rename", http.StatusOK, http.StatusNoContent)
	waitRow(t, "bob@example.com", "sk-bob", rowState{role: "proxy_admin"})
	waitRow(t, "carol@example.com", "sk-carol", rowState{role: "proxy_admin"})

	// Member removal by path filter.
	call(t, http.MethodPatch, ns, "/Groups/"+gid, patchOps(map[string]any{"op": "remove", "path": `members[value eq "` + ids[1] + `"]`})).
		must(t, "remove carol", http.StatusOK, http.StatusNoContent)
	waitRow(t, "carol@example.com", "sk-carol", rowState{role: "internal_user_viewer", inactive: true})
	if r := call(t, http.MethodGet, ns, "/Groups/"+gid, nil).must(t, "get group", http.StatusOK); strings.Contains(r.raw, ids[1]) || !strings.Contains(r.raw, bob) {
		t.Fatalf("members after removing carol: %s", r.raw)
	}

	// Deactivation, Okta style: a path-less replace of active.
	deactivate := patchOps(map[string]any{"op": "replace", "value": map[string]any{"active": false}})
	for range 2 { // retried: the same answer, nothing more written
		call(t, http.MethodPatch, ns, "/Users/"+bob, deactivate).must(t, "deactivate bob", http.StatusOK, http.StatusNoContent)
	}
	waitRow(t, "bob@example.com", "sk-bob", rowState{role: "internal_user_viewer", inactive: true, keyBlocked: true})
	if r := call(t, http.MethodGet, ns, "/Users/"+bob, nil).must(t, "get bob", http.StatusOK); r.body["active"] != false {
		t.Fatalf("bob after deactivation: %s", r.raw)
	}
	// Okta's user check after deactivation finds him still.
	if r := call(t, http.MethodGet, ns, filterPath("Users", `userName eq "bob@example.com"`), nil).must(t, "find bob", http.StatusOK); r.body["totalResults"] != float64(1) {
		t.Fatalf("find bob: %s", r.raw)
	}
}
