package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// TestDefaultManifestsApplyOnARealAPIServer renders config/default with
// kubectl kustomize (kubectl built from module sources) and applies it with
// --dry-run=server: the real apiserver validates every object (CRDs, RBAC,
// the Deployment's security context, Service, NetworkPolicy).
func TestDefaultManifestsApplyOnARealAPIServer(t *testing.T) {
	needSuite(t)
	kubectl, err := admin.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, err := kubectl.Run("kustomize", filepath.Join("..", "config", "default"))
	if err != nil {
		t.Fatalf("kustomize: %v\n%s", err, readAll(stderr))
	}
	rendered := readAll(out)
	for _, kind := range []string{"Namespace", "CustomResourceDefinition", "ClusterRole", "Deployment", "Service", "NetworkPolicy", "ServiceAccount", "PodDisruptionBudget"} {
		if !strings.Contains(rendered, "kind: "+kind+"\n") {
			t.Errorf("config/default renders no %s", kind)
		}
	}
	for _, want := range []string{"minAvailable: 1", "topologyKey: kubernetes.io/hostname", "topologyKey: topology.kubernetes.io/zone", "replicas: 2"} {
		if !strings.Contains(rendered, want) {
			t.Errorf("config/default renders no %q (two replicas, spread, one always available)", want)
		}
	}
	file := filepath.Join(t.TempDir(), "default.yaml")
	if err := os.WriteFile(file, []byte(rendered), 0o600); err != nil {
		t.Fatal(err)
	}
	// Namespaced objects need their namespace to exist for a dry run.
	if _, stderr, err := kubectl.Run("create", "namespace", "rolesync-system"); err != nil && !strings.Contains(readAll(stderr), "AlreadyExists") {
		t.Fatalf("create namespace: %v", err)
	}
	out, stderr, err = kubectl.Run("apply", "--dry-run=server", "-f", file)
	if err != nil {
		t.Fatalf("apply --dry-run=server: %v\n%s", err, readAll(stderr))
	}
	applied := readAll(out)
	for _, want := range []string{"deployment.apps/rolesync-controller-manager", "networkpolicy.networking.k8s.io/rolesync-manager",
		"service/rolesync-login", "clusterrole.rbac.authorization.k8s.io/rolesync-manager-role", "poddisruptionbudget.policy/rolesync-manager"} {
		if !strings.Contains(applied, want) {
			t.Errorf("dry run did not apply %s:\n%s", want, applied)
		}
	}
}

// TestOIDCOverlayApplies renders config/overlays/oidc and dry-runs it on the
// real apiserver: the manager gets --login-oidc-config and the ConfigMap.
func TestOIDCOverlayApplies(t *testing.T) {
	overlayApplies(t, "oidc", "--login-oidc-config=/etc/rolesync/oidc/config.yaml", "kind: ConfigMap\n", "audiences:")
}

// TestSCIMOverlayApplies renders config/overlays/scim and dry-runs it on the
// real apiserver: the manager gets the SCIM flags, port and token Secret
// volume, and the SCIM endpoint its own Service.
func TestSCIMOverlayApplies(t *testing.T) {
	overlayApplies(t, "scim", "--scim-bind-address=:9444", "--scim-token-file=/etc/rolesync/scim-tokens/tokens", "name: rolesync-scim\n",
		"secretName: rolesync-scim-tokens", "targetPort: scim")
}

// overlayApplies renders config/overlays/<name> with kubectl kustomize,
// checks it holds each of wants, and applies it with --dry-run=server.
func overlayApplies(t *testing.T, name string, wants ...string) {
	t.Helper()
	needSuite(t)
	kubectl, err := admin.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, err := kubectl.Run("kustomize", filepath.Join("..", "config", "overlays", name))
	if err != nil {
		t.Fatalf("kustomize: %v\n%s", err, readAll(stderr))
	}
	rendered := readAll(out)
	for _, want := range wants {
		if !strings.Contains(rendered, want) {
			t.Errorf("config/overlays/%s renders no %q", name, want)
		}
	}
	file := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(file, []byte(rendered), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := kubectl.Run("create", "namespace", "rolesync-system"); err != nil && !strings.Contains(readAll(stderr), "AlreadyExists") {
		t.Fatalf("create namespace: %v", err)
	}
	if _, stderr, err := kubectl.Run("apply", "--dry-run=server", "-f", file); err != nil {
		t.Fatalf("apply --dry-run=server: %v\n%s", err, readAll(stderr))
	}
}

// TestMaxRolePolicyCapsANamespace applies config/policies with kubectl on the
// real apiserver and checks that a namespace labelled rolesync.dev/max-role
// refuses RoleMappings (and ProxyUser overrides) above the cap, while other
// namespaces are not affected.
func TestMaxRolePolicyCapsANamespace(t *testing.T) {
	needSuite(t)
	kubectl, err := admin.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := kubectl.Run("apply", "-k", filepath.Join("..", "config", "policies")); err != nil {
		t.Fatalf("apply config/policies: %v\n%s", err, readAll(stderr))
	}
	ctx := context.Background()
	capped := newNamespace(t)
	nsObj := &corev1.Namespace{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: capped}, nsObj); err != nil {
		t.Fatal(err)
	}
	nsObj.Labels = map[string]string{"rolesync.dev/max-role": "internal_user"}
	if err := k8sClient.Update(ctx, nsObj); err != nil {
		t.Fatal(err)
	}
	mapping := func(ns, name, maxRole string) *rolesyncv1.RoleMapping {
		doc := "metadata: {name: " + name + "}\nspec:\n  claim: groups\n  rules: [{equals: ml, role: internal_user}]\n"
		if maxRole != "" {
			doc += "  maxRole: " + maxRole + "\n"
		}
		return roleMapping(t, ns, doc)
	}
	// The policy takes effect once the apiserver has loaded it.
	eventually(t, 30*time.Second, func() error {
		err := k8sClient.Create(ctx, mapping(capped, "probe", "proxy_admin"), client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "must set spec.maxRole at or below internal_user") {
			return fmt.Errorf("maxRole proxy_admin in a capped namespace: %w", err)
		}
		return nil
	})
	if err := k8sClient.Create(ctx, mapping(capped, "nomax", "")); err == nil {
		t.Fatal("a RoleMapping without maxRole was accepted in a capped namespace")
	}
	if err := k8sClient.Create(ctx, mapping(capped, "ok", "internal_user")); err != nil {
		t.Fatalf("a RoleMapping within the cap: %v", err)
	}
	pu := newUser(capped, "pinned", nil, false)
	pu.Spec.RoleOverride = ptr.To(rolesyncv1.RoleProxyAdmin)
	if err := k8sClient.Create(ctx, pu); err == nil || !strings.Contains(err.Error(), "roleOverride") {
		t.Fatalf("an override above the cap: %v", err)
	}
	// Namespaces without the label are not capped.
	free := newNamespace(t)
	if err := k8sClient.Create(ctx, mapping(free, "admins", "proxy_admin")); err != nil {
		t.Fatalf("an uncapped namespace: %v", err)
	}
}
