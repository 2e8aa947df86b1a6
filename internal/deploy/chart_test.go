package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/action"
	chartcommon "helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/rolesync/rolesync/internal/testing/testenv"
)

var chartDir = filepath.Join(testenv.RepoRoot(), "charts", "rolesync")

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func fullValues(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "ci", "full-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// render renders the chart with values into namespace ns, as helm
// install does: the templates, then the CRDs of crds/. It returns the
// objects and NOTES.txt.
func render(t *testing.T, values map[string]any, ns string) ([]*unstructured.Unstructured, string) {
	t.Helper()
	ch := loadChart(t)
	rv, err := chartutil.ToRenderValues(ch, values, chartcommon.ReleaseOptions{Name: "rolesync", Namespace: ns, IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var docs []string
	notes := ""
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch {
		case strings.HasSuffix(name, "NOTES.txt"):
			notes = files[name]
		case strings.HasSuffix(name, ".yaml"):
			docs = append(docs, files[name])
		}
	}
	for _, crd := range ch.CRDObjects() {
		docs = append(docs, string(crd.File.Data))
	}
	return decode(t, strings.Join(docs, "\n---\n")), notes
}

// decode splits a multi-document YAML stream into objects.
func decode(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufioReader(stream))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

func key(u *unstructured.Unstructured) string {
	return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
}

// TestChartLints runs Helm's linter on the chart with the default values
// and with every feature on.
func TestChartLints(t *testing.T) {
	for name, vals := range map[string]map[string]any{"default": nil, "full": fullValues(t)} {
		l := action.NewLint()
		l.Namespace = "rolesync-system"
		res := l.Run([]string{chartDir}, vals)
		for _, m := range res.Messages {
			t.Logf("%s: %s", name, m.Error())
		}
		if len(res.Errors) > 0 {
			t.Errorf("helm lint (%s values): %v", name, res.Errors)
		}
	}
}

// TestChartDefaultEqualsConfigDefault: with default values the chart
// renders exactly the objects of config/default (rendered by kubectl
// kustomize), object by object, but the Namespace (helm install
// --create-namespace makes it).
func TestChartDefaultEqualsConfigDefault(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with `make test` (kubectl renders config/default)")
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(assets, "kubectl"), "kustomize", filepath.Join(testenv.RepoRoot(), "config", "default"))
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, stderr.String())
	}
	want := map[string]*unstructured.Unstructured{}
	for _, u := range decode(t, out.String()) {
		switch u.GetKind() {
		case "Namespace":
			continue
		case "CustomResourceDefinition":
			// Helm installs crds/ as they are (no templating): the CRDs are
			// controller-gen's, without kustomize's part-of label.
			unstructured.RemoveNestedField(u.Object, "metadata", "labels")
		}
		want[key(u)] = u
	}
	rendered, _ := render(t, nil, "rolesync-system")
	got := map[string]*unstructured.Unstructured{}
	for _, u := range rendered {
		got[key(u)] = u
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("the chart does not render %s", k)
			continue
		}
		if d := cmp.Diff(w.Object, g.Object); d != "" {
			t.Errorf("%s differs from config/default (-kustomize +chart):\n%s", k, d)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("the chart renders %s, which config/default does not", k)
		}
	}
	if len(want) < 10 {
		t.Fatalf("config/default rendered %d objects: the comparison lost its point", len(want))
	}
}

// TestChartNotesWarnBelowTwoReplicas: NOTES.txt warns that logins fail
// closed with one replica, and does not with two.
func TestChartNotesWarnBelowTwoReplicas(t *testing.T) {
	_, two := render(t, nil, "rolesync-system")
	_, one := render(t, map[string]any{"replicas": 1}, "rolesync-system")
	if strings.Contains(two, "WARNING") || !strings.Contains(one, "WARNING: replicas is 1") || !strings.Contains(one, "fail closed") {
		t.Fatalf("NOTES with 2 replicas:\n%s\nwith 1:\n%s", two, one)
	}
}

// TestChartFullValues: every feature on renders what it promises.
func TestChartFullValues(t *testing.T) {
	objs, _ := render(t, fullValues(t), "rolesync-system")
	kinds := map[string]bool{}
	var dep *unstructured.Unstructured
	for _, u := range objs {
		kinds[u.GetKind()] = true
		if u.GetKind() == "Deployment" {
			dep = u
		}
	}
	for _, k := range []string{"Certificate", "Issuer", "ValidatingWebhookConfiguration", "ServiceMonitor", "PrometheusRule", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy"} {
		if !kinds[k] {
			t.Errorf("full values render no %s", k)
		}
	}
	args, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	c := args[0].(map[string]any)
	joined := fmt.Sprint(c["args"])
	for _, want := range []string{"--scim-bind-address=:9444", "--scim-user-id-attribute=externalId", "--key-revocation=Block", "--drift-policy=Report",
		"--deactivate-denied=false", "--login-oidc-config=/etc/rolesync/oidc/config.yaml", "--login-jwt-keys-file=/etc/rolesync/login-jwt/keys",
		"--login-keep-claims=name,department", "--webhook-cert-dir=/etc/rolesync/webhook-tls", "--resync-period=5m", "--zap-log-level=info"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the manager's args lack %s: %s", want, joined)
		}
	}
	if c["image"] != "registry.example.com/rolesync@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("image by digest: %v", c["image"])
	}
	if r, _, _ := unstructured.NestedFieldNoCopy(dep.Object, "spec", "replicas"); fmt.Sprint(r) != "3" {
		t.Errorf("replicas %v", r)
	}
}

// TestChartAppliesOnARealAPIServer dry-runs every object the chart renders
// (default and full values) with server-side apply on a real apiserver:
// the apiserver validates them, CRDs included (cert-manager's and the
// Prometheus Operator's kinds get stand-in CRDs of their group and kind).
func TestChartAppliesOnARealAPIServer(t *testing.T) {
	env, err := testenv.Start(testenv.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	c := env.Client
	for _, crd := range foreignCRDs() {
		if err := c.Create(ctx, crd); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "rolesync-system"}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error { return foreignCRDsServed(ctx, c) }, nil)
	for name, vals := range map[string]map[string]any{"default": nil, "full": fullValues(t)} {
		objs, _ := render(t, vals, "rolesync-system")
		applied := 0
		for _, u := range objs {
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.DryRunAll, client.FieldOwner("chart-test"), client.ForceOwnership); err != nil {
				t.Errorf("%s values: server-side dry-run apply of %s: %v", name, key(u), err)
				continue
			}
			applied++
		}
		if applied < 13 {
			t.Errorf("%s values: only %d objects applied", name, applied)
		}
		t.Logf("%s values: %d objects dry-run applied", name, applied)
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
