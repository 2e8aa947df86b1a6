package scim

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// TestBadSCIMInputGetsTheErrorSchema: malformed filters, unsupported
// operations, oversized bodies, unknown ids, wrong tokens: each answers
// the SCIM error schema with its status (and scimType) and writes nothing.
func TestBadSCIMInputGetsTheErrorSchema(t *testing.T) {
	needSuite(t)
	const ns = "scim-bad"
	u := call(t, http.MethodPost, ns, "/Users", oktaUser("erin@example.com", "erin")).must(t, "create", http.StatusCreated)
	id := u.str("id")
	before := getUser(t, ns, id).Generation // spec writes (the controller writes status meanwhile)
	big := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","displayName":"` + strings.Repeat("a", 1<<20) + `"}`
	for _, tc := range []struct {
		name, token, method, ns, path string
		body                          any
		status                        int
		scimType                      string
	}{
		{"malformed filter", tokens[ns], http.MethodGet, ns, filterPath("Users", `userName eq`), nil, 400, "invalidFilter"},
		{"filter on an unknown attribute", tokens[ns], http.MethodGet, ns, filterPath("Users", `shoeSize eq "9"`), nil, 400, "invalidFilter"},
		{"unsupported PATCH op", tokens[ns], http.MethodPatch, ns, "/Users/" + id, patchOps(map[string]any{"op": "move", "path": "active", "value": false}), 400, ""},
		{"remove without path", tokens[ns], http.MethodPatch, ns, "/Users/" + id, patchOps(map[string]any{"op": "remove"}), 400, ""},
		{"active not a boolean", tokens[ns], http.MethodPatch, ns, "/Users/" + id, patchOps(map[string]any{"op": "replace", "path": "active", "value": "maybe"}), 400, "invalidValue"},
		{"not JSON", tokens[ns], http.MethodPost, ns, "/Users", `{"userName":`, 400, "invalidSyntax"},
		{"no userName", tokens[ns], http.MethodPost, ns, "/Users", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}}, 400, ""},
		{"body over 1 MiB", tokens[ns], http.MethodPost, ns, "/Users", big, 413, ""},
		{"unknown user", tokens[ns], http.MethodGet, ns, "/Users/no-such-user", nil, 404, ""},
		{"unknown group", tokens[ns], http.MethodPatch, ns, "/Groups/dg-none", patchOps(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": id}}}), 404, ""},
		{"no token", "", http.MethodGet, ns, "/Users/" + id, nil, 401, ""},
		{"wrong token", "wrong-token-0123456789abcdef0123456789abcdef", http.MethodGet, ns, "/Users/" + id, nil, 401, ""},
		{"another namespace's token", tokens["scim-other"], http.MethodGet, ns, "/Users/" + id, nil, 401, ""},
		{"a token for a namespace without one", tokens[ns], http.MethodGet, "default", "/Users", nil, 401, ""},
		{"not the tenant URL", tokens[ns], http.MethodGet, "Not_A_Namespace", "/Users", nil, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := callWith(t, tc.token, tc.method, tc.ns, tc.path, tc.body)
			schemas, _ := r.body["schemas"].([]any)
			if r.status != tc.status || len(schemas) != 1 || schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" ||
				r.str("status") != itoa(tc.status) || (tc.scimType != "" && r.str("scimType") != tc.scimType) {
				t.Fatalf("%d %s, want %d %q in the SCIM error schema", r.status, truncate(r.raw), tc.status, tc.scimType)
			}
		})
	}
	if after := getUser(t, ns, id).Generation; after != before {
		t.Fatalf("refused requests wrote the user (generation %d -> %d)", before, after)
	}
	var groups rolesyncv1.DirectoryGroupList
	if err := k8sClient.List(context.Background(), &groups, client.InNamespace(ns)); err != nil || len(groups.Items) != 0 {
		t.Fatalf("refused requests made groups: %v %v", groups.Items, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
