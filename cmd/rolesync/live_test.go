package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/controllers"
	"github.com/rolesync/rolesync/internal/rolemap"
	"github.com/rolesync/rolesync/internal/testing/testenv"
)

// TestDiffPredictsTheController runs `kubectl rolesync diff` (the real
// kubectl, this binary as its plugin) against a live cluster with the
// controller running, applies the proposed mappings, and checks that the
// controller ends exactly where diff said, user by user. One namespace
// holds a mapping whose spec turned invalid: both keep deciding with its
// last valid generation.
func TestDiffPredictsTheController(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(rolesyncv1.AddToScheme(scheme))
	env, err := testenv.Start(testenv.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.Setup(mgr, controllers.Options{Registry: rolemap.NewRegistry(), MaxConcurrentReconciles: 4}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()

	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kc, err := env.Admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl, err := env.Admin.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	// This command, built as the kubectl plugin kubectl-rolesync.
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-rolesync"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kubectlBin := kubectl.Path
	run := func(stdin string, args ...string) (int, string, string) {
		cmd := exec.Command(kubectlBin, args...)
		cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			return exit.ExitCode(), out.String(), errb.String()
		case err != nil:
			t.Fatal(err)
		}
		return 0, out.String(), errb.String()
	}
	mustApply := func(args ...string) {
		t.Helper()
		if code, out, errs := run("", append([]string{"apply"}, args...)...); code != 0 {
			t.Fatalf("kubectl apply %v: %d %s%s", args, code, out, errs)
		}
	}
	for _, ns := range []string{"ai-a", "ai-b", "ai-c"} {
		if code, _, errs := run("", "create", "namespace", ns); code != 0 {
			t.Fatal(errs)
		}
	}
	mustApply("-f", "testdata/review/base.yaml")
	mustApply("-f", "testdata/review/users.yaml")
	// ai-c: a mapping that was valid, then was edited into an invalid one
	// (no admission webhook here to stop it): generation 1 stays in force.
	legacy := `apiVersion: rolesync.dev/v1
kind: RoleMapping
metadata: {name: legacy, namespace: ai-c}
spec:
  claim: groups
  rules:
  - {regex: "staff|crew", role: internal_user}
  onNoMatch: Deny
`
	hal := `apiVersion: rolesync.dev/v1
kind: ProxyUser
metadata: {name: hal, namespace: ai-c}
spec: {userID: hal, issuer: "https://kc.example.com/realms/ai", claims: {groups: [crew]}}
`
	mustApplyDoc := func(doc string) {
		t.Helper()
		if code, out, errs := run(doc, "apply", "-f", "-"); code != 0 {
			t.Fatalf("kubectl apply: %d %s%s", code, out, errs)
		}
	}
	mustApplyDoc(legacy)
	mustApplyDoc(hal)

	users := func() map[string]rolesyncv1.ProxyUser {
		var list rolesyncv1.ProxyUserList
		if err := env.Client.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		out := map[string]rolesyncv1.ProxyUser{}
		for _, pu := range list.Items {
			out[pu.Namespace+"/"+pu.Name] = pu
		}
		return out
	}
	decided := func(pu rolesyncv1.ProxyUser) error {
		if pu.Status.ObservedGeneration != pu.Generation || apimeta.FindStatusCondition(pu.Status.Conditions, rolesyncv1.ConditionDenied) == nil {
			return fmt.Errorf("%s/%s not decided yet", pu.Namespace, pu.Name)
		}
		return nil
	}
	testenv.Eventually(t, 60*time.Second, 100*time.Millisecond, func() error {
		all := users()
		if len(all) != 8 {
			return fmt.Errorf("%d users", len(all))
		}
		for _, pu := range all {
			if err := decided(pu); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	if hal := users()["ai-c/hal"]; hal.Status.Role != rolesyncv1.RoleInternalUser {
		t.Fatalf("hal: %+v", hal.Status)
	}
	// Break ai-c's mapping: an invalid regex the controller refuses.
	var rm rolesyncv1.RoleMapping
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "ai-c", Name: "legacy"}, &rm); err != nil {
		t.Fatal(err)
	}
	broken := "(staff"
	rm.Spec.Rules[0].Regex = &broken
	if err := env.Client.Update(ctx, &rm); err != nil {
		t.Fatalf("store an invalid spec (no webhook here): %v", err)
	}
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&rm), &rm); err != nil {
			return err
		}
		if rm.Status.ObservedGeneration != rm.Generation || rm.Status.GenerationInForce != 1 {
			return fmt.Errorf("legacy: observed %d in force %d", rm.Status.ObservedGeneration, rm.Status.GenerationInForce)
		}
		return nil
	}, nil)

	// The plugin, with kubectl's conventions.
	code, out, errs := run("", "rolesync", "diff", "-f", "testdata/review/proposed", "-A", "-o", "json", "--kubeconfig", kubeconfig)
	if code != exitChanges {
		t.Fatalf("kubectl rolesync diff: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(errs, "RoleMapping ai-c/legacy is invalid: its generation 1 stays in force") {
		t.Fatalf("diff did not warn about ai-c/legacy: %s", errs)
	}
	var report diffJSON
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if report.Users != 8 || len(report.Changes) != 5 || report.Gains != 2 {
		t.Fatalf("diff: %s", out)
	}
	predicted := map[string]string{} // namespace/name -> role or "denied <reason>"
	for key, pu := range users() {
		predicted[key] = outcomeOf(pu)
	}
	for _, c := range report.Changes {
		want := c.New.Role
		if c.New.Denied {
			want = "denied " + c.New.Reason
		}
		predicted[c.Namespace+"/"+c.Name] = want
	}
	if code, out, _ := run("", "rolesync", "explain", "--user", "dee", "-n", "ai-a"); code != 0 || !strings.Contains(out, "spec.roleOverride decides: internal_user") {
		t.Fatalf("kubectl rolesync explain --user dee -n ai-a: %d\n%s", code, out)
	}

	// Apply the proposal; the controller must end where diff said.
	mustApply("-f", "testdata/review/proposed")
	testenv.Eventually(t, 60*time.Second, 100*time.Millisecond, func() error {
		var diffs []string
		for key, pu := range users() {
			if err := decided(pu); err != nil {
				return err
			}
			if got := outcomeOf(pu); got != predicted[key] {
				diffs = append(diffs, fmt.Sprintf("%s: controller %s, diff said %s", key, got, predicted[key]))
			}
		}
		if len(diffs) > 0 {
			return errors.New(strings.Join(diffs, "; "))
		}
		return nil
	}, nil)
	// And diff now sees nothing left to change.
	if code, out, errs := run("", "rolesync", "diff", "-f", "testdata/review/proposed", "-A"); code != exitOK {
		t.Fatalf("diff after applying: exit %d\n%s%s", code, out, errs)
	}
	// --context is kubectl's: the named context is used, an unknown one is an error.
	_, ctxName, _ := run("", "config", "current-context")
	ctxName = strings.TrimSpace(ctxName)
	if code, out, errs := run("", "rolesync", "diff", "-f", "testdata/review/proposed", "-A", "--context", ctxName); ctxName == "" || code != exitOK {
		t.Fatalf("diff --context %q: exit %d\n%s%s", ctxName, code, out, errs)
	}
	if code, _, errs := run("", "rolesync", "diff", "-f", "testdata/review/proposed", "-A", "--context", "no-such-context"); code == exitOK || !strings.Contains(errs, "no-such-context") {
		t.Fatalf("diff --context no-such-context: exit %d: %s", code, errs)
	}
}

// outcomeOf is a ProxyUser's decided role, or "denied <reason>", from status.
func outcomeOf(pu rolesyncv1.ProxyUser) string {
	if c := apimeta.FindStatusCondition(pu.Status.Conditions, rolesyncv1.ConditionDenied); c != nil && c.Status == "True" {
		return "denied " + c.Reason
	}
	return string(pu.Status.Role)
}
