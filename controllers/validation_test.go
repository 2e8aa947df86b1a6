package controllers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// readSamples decodes every object in config/samples (the kustomization
// itself excluded).
func readSamples(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "config", "samples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		if filepath.Base(f) == "Kustomization" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v", f, err)
			}
			if len(u.Object) > 0 {
				objs = append(objs, u)
			}
		}
	}
	if len(objs) < 4 {
		t.Fatalf("expected at least 4 sample objects, found %d", len(objs))
	}
	return objs
}

func TestSamplesAreAccepted(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	for _, obj := range readSamples(t) {
		obj.SetNamespace(ns)
		if err := k8sClient.Create(context.Background(), obj); err != nil {
			t.Errorf("sample %s %s refused: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
}

func TestSamplesKubectlServerDryRun(t *testing.T) {
	needSuite(t)
	kubectl, err := admin.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := kubectl.Run("apply", "--dry-run=server", "-f", filepath.Join("..", "config", "samples"))
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, readAll(stderr))
	}
	out := readAll(stdout)
	for _, want := range []string{"rolemapping.rolesync.dev/keycloak", "rolemapping.rolesync.dev/entra", "rolemapping.rolesync.dev/strict", "proxyuser.rolesync.dev/break-glass-admin"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl output lacks %q:\n%s", want, out)
		}
	}
}

// invalidCase is an object the apiserver must refuse, with the field path
// (and message fragment) the refusal must name.
type invalidCase struct {
	name   string
	yaml   string
	fields []string
}

const validMappingSpec = `
  claim: groups
  rules:
  - equals: admins
    role: proxy_admin
`

func TestInvalidObjectsAreRejected(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	rm := func(spec string) string {
		return "apiVersion: rolesync.dev/v1\nkind: RoleMapping\nmetadata:\n  name: bad\nspec:\n" + spec
	}
	pu := func(spec string) string {
		return "apiVersion: rolesync.dev/v1\nkind: ProxyUser\nmetadata:\n  name: bad\nspec:\n" + spec
	}
	manyRules := "  claim: groups\n  rules:\n" + strings.Repeat("  - equals: x\n    role: internal_user\n", 1001)
	cases := []invalidCase{
		{"unknown role", rm("  claim: groups\n  rules:\n  - equals: a\n    role: superuser\n"), []string{"spec.rules[0].role", "superuser"}},
		{"rule without matcher", rm("  claim: groups\n  rules:\n  - role: internal_user\n"), []string{"spec.rules[0]", "exactly one of equals, glob, regex or expression"}},
		{"rule with two matchers", rm("  claim: groups\n  rules:\n  - equals: a\n    glob: 'a*'\n    role: internal_user\n"), []string{"spec.rules[0]", "exactly one of"}},
		{"Default without defaultRole", rm(validMappingSpec + "  onNoMatch: Default\n"), []string{"spec.defaultRole", "defaultRole is required"}},
		{"rule above maxRole", rm(validMappingSpec + "  maxRole: internal_user\n"), []string{"spec.rules", "above maxRole"}},
		{"defaultRole above maxRole", rm("  claim: groups\n  maxRole: internal_user_viewer\n  onNoMatch: Default\n  defaultRole: internal_user\n"), []string{"spec.defaultRole", "above maxRole"}},
		{"priority above 1000", rm(validMappingSpec + "  priority: 1001\n"), []string{"spec.priority"}},
		{"negative priority", rm(validMappingSpec + "  priority: -1\n"), []string{"spec.priority"}},
		{"empty rule claim path", rm("  rules:\n  - claim: ''\n    equals: a\n    role: internal_user\n"), []string{"spec.rules[0].claim"}},
		{"claim path too long", rm("  rules:\n  - claim: " + strings.Repeat("a", 257) + "\n    equals: a\n    role: internal_user\n"), []string{"spec.rules[0].claim", "256"}},
		{"empty default claim path", rm("  claim: ''\n"), []string{"spec.claim"}},
		{"rule without any claim path", rm("  rules:\n  - equals: a\n    role: internal_user\n"), []string{"spec.rules", "needs a claim path"}},
		{"unknown resolution", rm(validMappingSpec + "  resolution: Random\n"), []string{"spec.resolution"}},
		{"unknown onNoMatch", rm(validMappingSpec + "  onNoMatch: Allow\n"), []string{"spec.onNoMatch"}},
		{"unknown syncPolicy", rm(validMappingSpec + "  syncPolicy: Never\n"), []string{"spec.syncPolicy"}},
		{"unknown maxRole", rm(validMappingSpec + "  maxRole: root\n"), []string{"spec.maxRole"}},
		{"expression with claim", rm("  rules:\n  - expression: 'true'\n    claim: groups\n    role: internal_user\n"), []string{"spec.rules[0]", "do not apply to an expression"}},
		{"too many rules", rm(manyRules), []string{"spec.rules", "1000"}},
		{"team rules without allowedTeams", rm(validMappingSpec + "  teams:\n  - {equals: a, team: ai-a}\n"), []string{"spec.allowedTeams", "team rules need allowedTeams"}},
		{"team capture without a regex", rm(validMappingSpec + "  allowedTeams: [ai-*]\n  teams:\n  - {glob: 'a*', team: ai-$1}\n"), []string{"spec.teams[0].team", "captures of a regex"}},
		{"team rule with two matchers", rm(validMappingSpec + "  allowedTeams: [ai-*]\n  teams:\n  - {equals: a, glob: 'a*', team: ai-a}\n"), []string{"spec.teams[0]", "exactly one of"}},
		{"unknown teamRole", rm(validMappingSpec + "  allowedTeams: [ai-*]\n  teams:\n  - {equals: a, team: ai-a, teamRole: owner}\n"), []string{"spec.teams[0].teamRole", "owner"}},
		{"unknown teamSync", rm(validMappingSpec + "  teamSync: Mirror\n"), []string{"spec.teamSync", "Mirror"}},
		{"ProxyUser without userID", pu("  email: a@example.com\n"), []string{"spec.userID"}},
		{"ProxyUser empty userID", pu("  userID: ''\n"), []string{"spec.userID"}},
		{"ProxyUser userID too long", pu("  userID: " + strings.Repeat("u", 257) + "\n"), []string{"spec.userID", "256"}},
		{"ProxyUser email too long", pu("  userID: u\n  email: " + strings.Repeat("e", 321) + "\n"), []string{"spec.email", "320"}},
		{"ProxyUser unknown deletionPolicy", pu("  userID: u\n  deletionPolicy: Purge\n"), []string{"spec.deletionPolicy", "Purge"}},
		{"ProxyUser unknown roleOverride", pu("  userID: u\n  roleOverride: team\n"), []string{"spec.roleOverride", "team"}},
		{"ProxyUser claims not an object", pu("  userID: u\n  claims: [a, b]\n"), []string{"spec.claims"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(tc.yaml), &obj.Object); err != nil {
				t.Fatal(err)
			}
			obj.SetNamespace(ns)
			err := k8sClient.Create(context.Background(), obj)
			if err == nil {
				_ = k8sClient.Delete(context.Background(), obj)
				t.Fatalf("accepted; want a rejection naming %v", tc.fields)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			for _, f := range tc.fields {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error does not name %q: %v", f, err)
				}
			}
		})
	}
	if len(cases) < 15 {
		t.Fatalf("only %d invalid cases", len(cases))
	}
}

func TestUserIDIsImmutable(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	ns := newNamespace(t)
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte("apiVersion: rolesync.dev/v1\nkind: ProxyUser\nmetadata:\n  name: alice\nspec:\n  userID: alice\n"), &obj.Object); err != nil {
		t.Fatal(err)
	}
	obj.SetNamespace(ns)
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	patch := []byte(`{"spec":{"userID":"mallory"}}`)
	err := k8sClient.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
	if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.userID") || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("want userID immutable error, got %v", err)
	}
	// Other fields stay editable.
	if err := k8sClient.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"roleOverride":"internal_user"}}`))); err != nil {
		t.Fatalf("roleOverride edit refused: %v", err)
	}
}

func TestPrinterColumns(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	want := map[string][]string{
		"rolemappings.rolesync.dev": {"Priority", "Rules", "Ready", "Age"},
		"proxyusers.rolesync.dev":   {"User", "Role", "Source", "Synced", "Last Login", "Age"},
	}
	for name, cols := range want {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := k8sClient.Get(ctx, types.NamespacedName{Name: name}, crd); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
			if c.Priority == 0 {
				got = append(got, c.Name)
			}
		}
		if strings.Join(got, ",") != strings.Join(cols, ",") {
			t.Errorf("%s printer columns = %v, want %v", name, got, cols)
		}
	}

	// And kubectl shows them.
	ns := newNamespace(t)
	obj := &unstructured.Unstructured{}
	_ = yaml.Unmarshal([]byte("apiVersion: rolesync.dev/v1\nkind: ProxyUser\nmetadata:\n  name: bob\nspec:\n  userID: bob@example.com\n"), &obj.Object)
	obj.SetNamespace(ns)
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	kubectl, err := admin.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := kubectl.Run("get", "proxyusers", "-n", ns)
	if err != nil {
		t.Fatalf("kubectl get: %v\n%s", err, readAll(stderr))
	}
	out := readAll(stdout)
	header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	if strings.Join(header, " ") != "NAME USER ROLE SOURCE SYNCED LAST LOGIN AGE" {
		t.Errorf("kubectl get proxyusers header = %q", header)
	}
	if !strings.Contains(out, "bob@example.com") {
		t.Errorf("kubectl get proxyusers lacks the user:\n%s", out)
	}
}
