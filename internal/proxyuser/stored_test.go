package proxyuser

import (
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/claimpath"
	"github.com/rolesync/rolesync/internal/rolemap"
)

func compiled(t *testing.T, doc string) *rolemap.Mapping {
	t.Helper()
	rm := &rolesyncv1.RoleMapping{}
	if err := yaml.UnmarshalStrict([]byte(doc), rm); err != nil {
		t.Fatal(err)
	}
	m, errs := rolemap.Compile(rm)
	if m == nil {
		t.Fatal(errs)
	}
	return m
}

// TestStoredPathsKeepWhatMappingsReadAndKeep: a login stores the claims
// the rules read, the mappings' keepClaims and --login-keep-claims; every
// claim when a rule is an expression.
func TestStoredPathsKeepWhatMappingsReadAndKeep(t *testing.T) {
	m := compiled(t, `metadata: {name: m}
spec:
  claim: groups
  keepClaims: [department, "org.unit"]
  rules: [{equals: devs, role: internal_user}]
  onNoMatch: Deny
`)
	extra, _ := claimpath.Parse("name")
	paths, all := StoredPaths(rolemap.NewEngine(m), []claimpath.Path{extra})
	var got []string
	for _, p := range paths {
		got = append(got, p.String())
	}
	slices.Sort(got)
	if all || !slices.Equal(got, []string{"department", "groups", "name", "org.unit"}) {
		t.Fatalf("stored paths %v (all %v)", got, all)
	}
	claims := map[string]any{"groups": []any{"devs"}, "department": "finance", "org": map[string]any{"unit": "ai", "x": 1}, "secret": "s"}
	reduced := ReduceClaims(claims, paths)
	if _, ok := reduced["secret"]; ok || reduced["department"] != "finance" || reduced["org"].(map[string]any)["unit"] != "ai" {
		t.Fatalf("reduced %v", reduced)
	}
	cel := compiled(t, `metadata: {name: cel}
spec:
  rules: [{expression: "claims.x == 1", role: internal_user}]
  onNoMatch: Deny
`)
	if _, all := StoredPaths(rolemap.NewEngine(m, cel), nil); !all {
		t.Fatal("an expression rule may read any claim: all must be stored")
	}
	if _, errs := rolemap.Compile(&rolesyncv1.RoleMapping{Spec: rolesyncv1.RoleMappingSpec{KeepClaims: []string{"a..b"}}}); !strings.Contains(errs.ToAggregate().Error(), "spec.keepClaims[0]") {
		t.Fatalf("a bad keepClaims path must not compile, naming the field: %v", errs)
	}
}
