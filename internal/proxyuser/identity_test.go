package proxyuser

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rolesync/rolesync/internal/claimpath"
)

func TestNameIsDeterministicAndValid(t *testing.T) {
	cases := []string{"alice", "Alice@Example.COM", "", "---", strings.Repeat("x", 256), "用户", "a.b_c d", "00000000-0000-0000-0000-000000000001"}
	seen := map[string]string{}
	for _, id := range cases {
		name := Name("https://idp", id)
		if errs := validation.IsDNS1123Subdomain(name); len(errs) != 0 || len(name) > 63 {
			t.Errorf("%q -> %q: %v", id, name, errs)
		}
		if Name("https://idp", id) != name {
			t.Errorf("%q: not deterministic", id)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("%q and %q share %q", id, other, name)
		}
		seen[name] = id
	}
	if Name("https://a", "bob") == Name("https://b", "bob") {
		t.Error("the issuer is not part of the name")
	}
	if got := Name("https://idp", "Alice@Example.COM"); !strings.HasPrefix(got, "alice-example-com-") {
		t.Errorf("prefix not readable: %q", got)
	}
}

func TestReduceClaims(t *testing.T) {
	claims := map[string]any{
		"resource_access": map[string]any{"litellm": map[string]any{"roles": []any{"a"}}, "other": map[string]any{"roles": []any{"b"}}},
		"groups":          []any{"g1", "g2"},
		"name":            "N",
		"secret":          "s",
	}
	paths := []claimpath.Path{claimpath.MustParse("resource_access.litellm.roles"), claimpath.MustParse("groups[1]"), claimpath.MustParse("missing.x"), claimpath.MustParse("name")}
	want := map[string]any{
		"resource_access": map[string]any{"litellm": map[string]any{"roles": []any{"a"}}},
		"groups":          []any{"g1", "g2"},
		"name":            "N",
	}
	if got := ReduceClaims(claims, paths); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if got := ReduceClaims(claims, nil); len(got) != 0 {
		t.Fatalf("no paths kept %v", got)
	}
}
