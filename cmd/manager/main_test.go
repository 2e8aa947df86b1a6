package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/testing/poll"
)

// TestManagerBinary builds the manager, runs it against a real apiserver with
// webhooks off, and checks that it becomes ready and that its RoleMapping
// controller refuses an invalid mapping.
func TestManagerBinary(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run with `make test`")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	user, err := env.AddUser(envtest.User{Name: "manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kcPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "manager")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	probe := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--kubeconfig", kcPath, "--metrics-bind-address", "0", "--health-probe-bind-address", probe)
	cmd.Env = append(os.Environ(), "ENABLE_WEBHOOKS=false")
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()

	waitFor(t, 60*time.Second, logs, func() error {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})

	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	bad := &rolesyncv1.RoleMapping{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "default"}}
	re := "("
	bad.Spec.Claim = "groups"
	bad.Spec.Rules = []rolesyncv1.RoleRule{{Regex: &re, Role: rolesyncv1.RoleInternalUser}}
	if err := c.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, logs, func() error {
		got := &rolesyncv1.RoleMapping{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(bad), got); err != nil {
			return err
		}
		cond := apimeta.FindStatusCondition(got.Status.Conditions, rolesyncv1.ConditionReady)
		if cond == nil || cond.Reason != rolesyncv1.ReasonInvalidSpec {
			return fmt.Errorf("Ready condition %+v", cond)
		}
		return nil
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func waitFor(t *testing.T, timeout time.Duration, logs *lockedBuffer, cond func() error) {
	t.Helper()
	poll.Until(t, timeout, 100*time.Millisecond, cond, func() string { return "manager log:\n" + logs.String() })
}
