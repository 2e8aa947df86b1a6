package controllers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/review"
	"github.com/rolesync/rolesync/internal/rolemap"
)

func roleMapping(t testing.TB, ns, doc string) *rolesyncv1.RoleMapping {
	t.Helper()
	rm := &rolesyncv1.RoleMapping{}
	if err := yaml.UnmarshalStrict([]byte(doc), rm); err != nil {
		t.Fatal(err)
	}
	rm.Namespace = ns
	return rm
}

func TestBrokenMappingsRefusedByKubectlApply(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	kubectl, err := admin.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, spec, field, msg string
	}{
		{"invalid regex", "  claim: groups\n  rules:\n  - {regex: 'team-(', role: internal_user}\n", "spec.rules[0].regex", "missing closing )"},
		{"CEL does not compile", "  rules:\n  - {expression: 'claims.', role: internal_user}\n", "spec.rules[0].expression", "does not compile"},
		{"CEL not bool", "  rules:\n  - {expression: 'claims.email', role: internal_user}\n", "spec.rules[0].expression", "must return bool"},
		{"duplicate rule", "  claim: groups\n  rules:\n  - {equals: a, role: internal_user}\n  - {equals: a, role: proxy_admin}\n", "spec.rules[1]", "Duplicate value"},
		{"unparseable claim path", "  rules:\n  - {claim: 'a[x]', equals: a, role: internal_user}\n", "spec.rules[0].claim", "not a non-negative integer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "rm.yaml")
			doc := fmt.Sprintf("apiVersion: rolesync.dev/v1\nkind: RoleMapping\nmetadata:\n  name: broken\n  namespace: %s\nspec:\n%s", ns, tc.spec)
			if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, stderr, err := kubectl.Run("apply", "-f", file)
			msg := readAll(stderr)
			if err == nil {
				t.Fatal("kubectl apply accepted a broken mapping")
			}
			for _, want := range []string{`RoleMapping "broken" is invalid`, tc.field, tc.msg} {
				if !strings.Contains(msg, want) {
					t.Errorf("kubectl error lacks %q:\n%s", want, msg)
				}
			}
			err = k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "broken"}, &rolesyncv1.RoleMapping{})
			if !apierrors.IsNotFound(err) {
				t.Fatalf("broken mapping was stored: %v", err)
			}
		})
	}
}

func readyCondition(ctx context.Context, key client.ObjectKey) (*rolesyncv1.RoleMapping, *metav1.Condition, error) {
	rm := &rolesyncv1.RoleMapping{}
	if err := k8sClient.Get(ctx, key, rm); err != nil {
		return nil, nil, err
	}
	c := apimeta.FindStatusCondition(rm.Status.Conditions, rolesyncv1.ConditionReady)
	if c == nil || rm.Status.ObservedGeneration != rm.Generation {
		return rm, nil, errors.New("not reconciled yet")
	}
	return rm, c, nil
}

func TestInvalidMappingNeverReachesTheEngine(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	ns := newNamespace(t)
	good := roleMapping(t, ns, "metadata: {name: good}\nspec:\n  claim: groups\n  rules: [{equals: ml, role: internal_user}]\n")
	bad := roleMapping(t, ns, "metadata: {name: bad, labels: {"+bypassLabel+": 'true'}}\nspec:\n  priority: 500\n  claim: groups\n  rules: [{equals: ml, role: proxy_admin}, {regex: '(', role: proxy_admin}]\n")
	for _, rm := range []*rolesyncv1.RoleMapping{good, bad} {
		if err := k8sClient.Create(ctx, rm); err != nil {
			t.Fatalf("create %s: %v", rm.Name, err)
		}
	}
	eventually(t, 20*time.Second, func() error {
		_, c, err := readyCondition(ctx, client.ObjectKeyFromObject(bad))
		if err != nil {
			return err
		}
		if c.Status != metav1.ConditionFalse || c.Reason != rolesyncv1.ReasonInvalidSpec || !strings.Contains(c.Message, "spec.rules[1].regex") {
			return fmt.Errorf("bad mapping condition: %+v", c)
		}
		_, c, err = readyCondition(ctx, client.ObjectKeyFromObject(good))
		if err != nil {
			return err
		}
		if c.Status != metav1.ConditionTrue || c.Reason != rolesyncv1.ReasonValid {
			return fmt.Errorf("good mapping condition: %+v", c)
		}
		return nil
	})
	e, _ := registry.Engine(ns)
	if d := e.Evaluate(map[string]any{"groups": []any{"ml"}}, ""); d.Role != rolesyncv1.RoleInternalUser || d.Source.RoleMapping != ns+"/good" {
		t.Fatalf("engine decided %s from %s; the invalid mapping must not take part", d.Role, d.Source.RoleMapping)
	}

	// Fixing the mapping brings it in: it has the higher priority.
	fix := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/rules/1/regex","value":"x+"}]`))
	if err := k8sClient.Patch(ctx, bad, fix); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		rm, c, err := readyCondition(ctx, client.ObjectKeyFromObject(bad))
		if err != nil {
			return err
		}
		if c.Status != metav1.ConditionTrue || rm.Status.Rules != 2 {
			return fmt.Errorf("fixed mapping: %+v rules=%d", c, rm.Status.Rules)
		}
		return nil
	})
	e, _ = registry.Engine(ns)
	if d := e.Evaluate(map[string]any{"groups": []any{"ml"}}, ""); d.Role != rolesyncv1.RoleProxyAdmin {
		t.Fatalf("after the fix the engine decided %s", d.Role)
	}

	// Deleting it takes it out again.
	if err := k8sClient.Delete(ctx, bad); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		e, _ := registry.Engine(ns)
		if len(e.Mappings()) != 1 {
			return fmt.Errorf("%d mappings in the engine", len(e.Mappings()))
		}
		return nil
	})
}

func TestRoleMappingStatusIsNotRewrittenWhenUnchanged(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	ns := newNamespace(t)
	rm := roleMapping(t, ns, "metadata: {name: m}\nspec:\n  claim: groups\n  rules: [{equals: ml, role: internal_user}]\n")
	if err := k8sClient.Create(ctx, rm); err != nil {
		t.Fatal(err)
	}
	var rv string
	eventually(t, 20*time.Second, func() error {
		got, _, err := readyCondition(ctx, client.ObjectKeyFromObject(rm))
		if err == nil {
			rv = got.ResourceVersion
		}
		return err
	})
	// Reconcile directly again: the status is the same, so nothing is written.
	r := &RoleMappingReconciler{Client: cachedClient, Registry: rolemap.NewRegistry()}
	for range 3 {
		if _, err := r.Reconcile(ctx, reqFor(rm)); err != nil {
			t.Fatal(err)
		}
	}
	got := &rolesyncv1.RoleMapping{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(rm), got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != rv {
		t.Fatalf("resourceVersion moved %s -> %s on a no-op reconcile", rv, got.ResourceVersion)
	}
}

// TestBrokenEditNeverWidensAccess: a strict, high-priority mapping edited
// into something invalid (webhook bypassed, as with the webhook off) keeps
// deciding with its last valid generation, also for a manager that starts
// after the edit; users never fall through to the laxer mapping.
func TestBrokenEditNeverWidensAccess(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	ns := newNamespace(t)
	lax := roleMapping(t, ns, "metadata: {name: lax}\nspec:\n  claim: groups\n  rules: [{glob: '*', role: proxy_admin_viewer}]\n")
	strict := roleMapping(t, ns, "metadata: {name: strict, labels: {"+bypassLabel+": 'true'}}\nspec:\n  priority: 100\n  claim: groups\n  rules: [{equals: ml, role: internal_user_viewer}]\n  onNoMatch: Deny\n")
	for _, rm := range []*rolesyncv1.RoleMapping{lax, strict} {
		if err := k8sClient.Create(ctx, rm); err != nil {
			t.Fatal(err)
		}
	}
	decide := func(reg *rolemap.Registry) rolesyncv1.Role {
		e, _ := reg.Engine(ns)
		return e.Evaluate(map[string]any{"groups": []any{"ml"}}, "").Role
	}
	eventually(t, 20*time.Second, func() error {
		if got := decide(registry); got != rolesyncv1.RoleInternalUserViewer {
			return fmt.Errorf("decided %q", got)
		}
		return nil
	})
	breakIt := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"add","path":"/spec/rules/-","value":{"regex":"(","role":"internal_user"}}]`))
	if err := k8sClient.Patch(ctx, strict, breakIt); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		rm, c, err := readyCondition(ctx, client.ObjectKeyFromObject(strict))
		if err != nil {
			return err
		}
		if c.Reason != rolesyncv1.ReasonInvalidSpec || rm.Status.ObservedGeneration != rm.Generation || rm.Status.GenerationInForce != 1 {
			return fmt.Errorf("status %+v %+v", c, rm.Status)
		}
		return nil
	})
	if got := decide(registry); got != rolesyncv1.RoleInternalUserViewer {
		t.Fatalf("after the broken edit the engine decided %q: access widened", got)
	}
	// A manager starting now (a fresh Registry) restores generation 1 from status.
	fresh := rolemap.NewRegistry()
	startOperator(t, ns, Options{Registry: fresh})
	eventually(t, 20*time.Second, func() error {
		if g, ok := fresh.InForce(ns, "strict"); !ok || g != 1 {
			return fmt.Errorf("in force %d %v", g, ok)
		}
		return nil
	})
	if got := decide(fresh); got != rolesyncv1.RoleInternalUserViewer {
		t.Fatalf("a restarted manager decided %q: access widened", got)
	}
}

// Every replica loads a RoleMapping into its Registry (its login server
// decides with it), but only the leader writes its status: a follower
// writes nothing, and once elected it writes the status it skipped.
func TestRoleMappingStatusIsWrittenByTheLeaderOnly(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	rm := createMapping(t, ns, keycloakMapping, true) // the suite manager leaves it alone
	elected := make(chan struct{})
	reg := rolemap.NewRegistry()
	r := &RoleMappingReconciler{Client: listFromCache{k8sClient}, Registry: reg, Elected: elected}
	ctx := context.Background()
	if _, err := r.Reconcile(ctx, reqFor(rm)); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.InForce(ns, rm.Name); !ok {
		t.Fatal("a follower did not load the mapping into its Registry")
	}
	got := &rolesyncv1.RoleMapping{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(rm), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.ObservedGeneration != 0 || len(got.Status.Conditions) != 0 {
		t.Fatalf("a follower wrote the status: %+v", got.Status)
	}
	close(elected)
	if _, err := r.Reconcile(ctx, reqFor(rm)); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(rm), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.ObservedGeneration != got.Generation || apimeta.FindStatusCondition(got.Status.Conditions, rolesyncv1.ConditionReady) == nil {
		t.Fatalf("the leader did not write the status: %+v", got.Status)
	}
}

// listFromCache reads objects from the apiserver but lists from the suite
// manager's cache, which has the field indexes the controllers list by.
type listFromCache struct{ client.Client }

func (c listFromCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return cachedClient.List(ctx, list, opts...)
}

// The mass-change brake: an edit that would deny or demote too many of a
// namespace's users is held (the generation in force keeps deciding, the
// RoleMapping says why and how many) until the confirm annotation names
// its generation; an edit that only grants is never held.
func TestMassChangeBrakeHoldsUntilConfirmed(t *testing.T) {
	needSuite(t)
	ctx := context.Background()
	ns := newNamespace(t)
	reg := rolemap.NewRegistry()
	startOperator(t, ns, Options{Registry: reg, Brake: review.Brake{Percent: 10, MinUsers: 3}})
	rm := createMapping(t, ns, strictMapping, true)
	var users []*rolesyncv1.ProxyUser
	for i := range 5 {
		users = append(users, createUser(t, newUser(ns, fmt.Sprintf("u%d", i), map[string]any{"groups": []any{"platform"}}, true)))
	}
	for _, pu := range users {
		waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, func(p *rolesyncv1.ProxyUser) error {
			if p.Status.Role != rolesyncv1.RoleInternalUser {
				return fmt.Errorf("role %q", p.Status.Role)
			}
			return nil
		})
	}
	decide := func() rolemap.Resolution {
		e, _ := reg.Engine(ns)
		d := e.Evaluate(map[string]any{"groups": []any{"platform"}}, "")
		return rolemap.Resolve(ns, nil, &d)
	}
	edit := func(equals string) {
		t.Helper()
		cur := &rolesyncv1.RoleMapping{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(rm), cur); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(cur.DeepCopy())
		cur.Spec.Rules[0].Equals = ptr.To(equals)
		if err := k8sClient.Patch(ctx, cur, patch); err != nil {
			t.Fatal(err)
		}
	}

	// Every user would be denied: held.
	edit("platform-v2")
	eventually(t, 30*time.Second, func() error {
		cur := &rolesyncv1.RoleMapping{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(rm), cur); err != nil {
			return err
		}
		c := apimeta.FindStatusCondition(cur.Status.Conditions, rolesyncv1.ConditionReady)
		if c == nil || c.Reason != rolesyncv1.ReasonMassChangeHeld || cur.Status.HeldGeneration != 2 || cur.Status.HeldUsers != 5 ||
			cur.Status.GenerationInForce != 1 || !strings.Contains(c.Message, rolesyncv1.ConfirmGenerationAnnotation+"=2") {
			return fmt.Errorf("status %+v, condition %+v", cur.Status, c)
		}
		return nil
	})
	if res := decide(); res.Denied || res.Role != rolesyncv1.RoleInternalUser {
		t.Fatalf("the held edit is in force: %+v", res)
	}

	// Confirmed: in force, every user denied.
	cur := &rolesyncv1.RoleMapping{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(rm), cur); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Annotations = map[string]string{rolesyncv1.ConfirmGenerationAnnotation: "2"}
	if err := k8sClient.Patch(ctx, cur, patch); err != nil {
		t.Fatal(err)
	}
	for _, pu := range users {
		waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, func(p *rolesyncv1.ProxyUser) error {
			return conditionIs(p, rolesyncv1.ConditionDenied, metav1.ConditionTrue, rolesyncv1.ReasonNoMatch)
		})
	}
	// Granting them back is never held.
	edit("platform")
	for _, pu := range users {
		waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, func(p *rolesyncv1.ProxyUser) error {
			if p.Status.Role != rolesyncv1.RoleInternalUser {
				return fmt.Errorf("role %q", p.Status.Role)
			}
			return nil
		})
	}
	got := &rolesyncv1.RoleMapping{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(rm), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.HeldGeneration != 0 || got.Status.GenerationInForce != got.Generation {
		t.Fatalf("after a granting edit: %+v", got.Status)
	}
}
