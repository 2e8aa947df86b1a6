package controllers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDefaultManifestsApplyOnARealAPIServer renders config/default with
// kubectl kustomize (kubectl built from module sources) and applies it with
// --dry-run=server: the real apiserver validates every object (CRDs, RBAC,
// the Deployment's security context, Service, NetworkPolicy).
func TestDefaultManifestsApplyOnARealAPIServer(t *testing.T) {
	kubectl, err := admin.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, err := kubectl.Run("kustomize", filepath.Join("..", "config", "default"))
	if err != nil {
		t.Fatalf("kustomize: %v\n%s", err, readAll(stderr))
	}
	rendered := readAll(out)
	for _, kind := range []string{"Namespace", "CustomResourceDefinition", "ClusterRole", "Deployment", "Service", "NetworkPolicy", "ServiceAccount"} {
		if !strings.Contains(rendered, "kind: "+kind+"\n") {
			t.Errorf("config/default renders no %s", kind)
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
		"service/rolesync-login", "clusterrole.rbac.authorization.k8s.io/rolesync-manager-role"} {
		if !strings.Contains(applied, want) {
			t.Errorf("dry run did not apply %s:\n%s", want, applied)
		}
	}
}
