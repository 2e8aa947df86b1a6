package login

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/controllers"
	"github.com/rolesync/rolesync/internal/login/authn"
	"github.com/rolesync/rolesync/internal/proxyuser"
)

func getUser(t *testing.T, ns, name string) *rolesyncv1.ProxyUser {
	t.Helper()
	pu := &rolesyncv1.ProxyUser{}
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, pu); err != nil {
		t.Fatal(err)
	}
	return pu
}

func claimsOf(t *testing.T, pu *rolesyncv1.ProxyUser) map[string]any {
	t.Helper()
	var c map[string]any
	if pu.Spec.Claims != nil {
		if err := json.Unmarshal(pu.Spec.Claims.Raw, &c); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestSignedJSONEventCreatesTheUserAndAnswersTheRole(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	at := time.Now().Add(-time.Second).Truncate(time.Second)
	r := postEvent(t, ns, event("ev-1", "alice", at, map[string]any{"groups": []any{"platform", "admins-eu"}, "name": "Alice", "secret_stuff": "x", "email_verified": true}))
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	want := proxyuser.Name(idpIssuer, "alice")
	if r.resp.UserID != "alice" || r.resp.Role != rolesyncv1.RoleProxyAdmin || r.resp.Denied || r.resp.Stale ||
		r.resp.ProxyUser == nil || *r.resp.ProxyUser != (ObjectRef{Namespace: ns, Name: want}) {
		t.Fatalf("response %s", r.body)
	}
	if r.resp.Source == nil || r.resp.Source.Description != "strict#1 groups=admins-eu" {
		t.Fatalf("source %+v", r.resp.Source)
	}
	pu := getUser(t, ns, want)
	if pu.Spec.UserID != "alice" || pu.Spec.Email != "alice@example.com" || pu.Spec.Issuer != idpIssuer ||
		pu.Spec.LastLoginTime == nil || !pu.Spec.LastLoginTime.Time.Equal(at) {
		t.Fatalf("spec %+v", pu.Spec)
	}
	claims := claimsOf(t, pu)
	if len(claims) != 2 || claims["name"] != "Alice" || claims["groups"] == nil {
		t.Fatalf("stored claims %v: want only the mapped groups and the kept name", claims)
	}
	if !controllerutil.ContainsFinalizer(pu, proxyuser.Finalizer) {
		t.Fatal("created without the finalizer")
	}
	managed := false
	for _, mf := range pu.ManagedFields {
		managed = managed || mf.Manager == proxyuser.LoginFieldManager
	}
	if !managed {
		t.Fatalf("no fields owned by %s", proxyuser.LoginFieldManager)
	}
	// The controller agrees with the answer.
	waitUntil(t, 30*time.Second, func() error {
		pu = getUser(t, ns, want)
		if pu.Status.Role != rolesyncv1.RoleProxyAdmin {
			return fmt.Errorf("status role %q", pu.Status.Role)
		}
		return nil
	})
}

func TestJWTEventsWithEachKeyKind(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	claims := map[string]any{"groups": []any{"platform"}}
	for i, c := range []struct {
		name   string
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{"RS256", jwt.SigningMethodRS256, rsaKey, "rsa"},
		{"PS256 without kid", jwt.SigningMethodPS256, rsaKey, ""},
		{"ES256", jwt.SigningMethodES256, ecKey, "ec"},
		{"HS256 oct key", jwt.SigningMethodHS256, hsKey, "hs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			user := fmt.Sprintf("jwt-user-%d", i)
			r := postToken(t, ns, token(t, inNS(ns, event(fmt.Sprintf("jwt-%d", i), user, time.Now(), claims)), c.method, c.key, c.kid, nil))
			if r.status != http.StatusOK || r.resp.Role != rolesyncv1.RoleInternalUser {
				t.Fatalf("%d %s", r.status, r.body)
			}
			getUser(t, ns, r.resp.ProxyUser.Name)
		})
	}
}

func TestEventForAPreCreatedUserUpdatesItAndKeepsTheOverride(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	pre := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "break-glass"}}
	pre.Spec.UserID, pre.Spec.Issuer = "bob", idpIssuer
	override := rolesyncv1.RoleProxyAdmin
	pre.Spec.RoleOverride = &override
	if err := k8sClient.Create(context.Background(), pre); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, func() error { // the cache has it
		u, err := srv.findUser(context.Background(), ns, &authn.Event{UserID: "bob", Issuer: idpIssuer}, false)
		if err == nil && u == nil {
			err = fmt.Errorf("not cached yet")
		}
		return err
	})
	// Even a login no mapping admits: the admin's pin wins.
	r := postEvent(t, ns, event("bob-1", "bob", time.Now(), map[string]any{"groups": []any{"sales"}}))
	if r.status != http.StatusOK || r.resp.Role != rolesyncv1.RoleProxyAdmin || r.resp.Source.Type != rolesyncv1.SourceOverride || r.resp.ProxyUser.Name != "break-glass" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	got := getUser(t, ns, "break-glass")
	if got.Spec.LastLoginTime == nil || got.Spec.RoleOverride == nil || *got.Spec.RoleOverride != override || got.Spec.Email != "bob@example.com" {
		t.Fatalf("spec %+v", got.Spec)
	}
	if n := len(snapshot(t, ns)); n != 1 {
		t.Fatalf("%d ProxyUsers, want the pre-created one only", n)
	}
}

func TestStaleEventChangesNothing(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	now := time.Now().Truncate(time.Second)
	writes := func() uint64 { return histogramCount(t, writeDuration) }
	w0 := writes()
	r := postEvent(t, ns, event("new", "carol", now, map[string]any{"groups": []any{"platform"}}))
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got := writes() - w0; got != 1 {
		t.Fatalf("rolesync_login_write_duration_seconds counted %d writes for a first login, want 1", got)
	}
	before := getUser(t, ns, r.resp.ProxyUser.Name)
	w1 := writes()
	old := postEvent(t, ns, event("old", "carol", now.Add(-time.Minute), map[string]any{"groups": []any{"admins-x"}}))
	if old.status != http.StatusOK || !old.resp.Stale || !strings.Contains(string(old.body), `"stale":true`) {
		t.Fatalf("%d %s", old.status, old.body)
	}
	if got := writes() - w1; got != 0 {
		t.Fatalf("a stale event was timed as %d writes, want 0", got)
	}
	after := getUser(t, ns, r.resp.ProxyUser.Name)
	if after.Generation != before.Generation || !after.Spec.LastLoginTime.Equal(before.Spec.LastLoginTime) {
		t.Fatalf("a stale event changed the user: generation %d -> %d", before.Generation, after.Generation)
	}
}

// TestDeniedLoginOfAnExistingUserDemotes: a denied login creates nothing
// for a new user; for an existing user it records the new claims and time
// (spec only: the login server writes no condition), so the controller
// denies the user from them.
func TestDeniedLoginOfAnExistingUserDemotes(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	r := postEvent(t, ns, event("d-1", "dave", time.Now(), map[string]any{"groups": []any{"sales"}}))
	if r.status != http.StatusForbidden || r.err.Reason != rolesyncv1.ReasonNoMatch || !r.err.Denied || r.err.UserID != "dave" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if n := len(snapshot(t, ns)); n != 0 {
		t.Fatalf("a denied login created %d ProxyUsers", n)
	}
	// An existing user whose new login is denied: the claims are recorded,
	// the controller denies the user, and an Event says why.
	ok := postEvent(t, ns, event("d-2", "dave", time.Now(), map[string]any{"groups": []any{"platform"}}))
	if ok.status != http.StatusOK {
		t.Fatalf("%d %s", ok.status, ok.body)
	}
	name := ok.resp.ProxyUser.Name
	waitUntil(t, 30*time.Second, func() error {
		if getUser(t, ns, name).Status.Role != rolesyncv1.RoleInternalUser {
			return fmt.Errorf("not resolved yet")
		}
		return nil
	})
	before := getUser(t, ns, name)
	r = postEvent(t, ns, event("d-3", "dave", time.Now(), map[string]any{"groups": []any{"sales"}}))
	if r.status != http.StatusForbidden {
		t.Fatalf("%d %s", r.status, r.body)
	}
	after := getUser(t, ns, name)
	if after.Generation == before.Generation || claimsOf(t, after)["groups"].([]any)[0] != "sales" ||
		!after.Spec.LastLoginTime.After(before.Spec.LastLoginTime.Time) {
		t.Fatalf("the denied login was not recorded: claims %v", claimsOf(t, after))
	}
	waitUntil(t, 30*time.Second, func() error {
		u := getUser(t, ns, name)
		c := apimeta.FindStatusCondition(u.Status.Conditions, rolesyncv1.ConditionDenied)
		if u.Status.Role != "" || c == nil || c.Status != metav1.ConditionTrue || c.Reason != rolesyncv1.ReasonNoMatch {
			return fmt.Errorf("role %q, Denied condition %+v", u.Status.Role, c)
		}
		return nil
	})
	waitUntil(t, 30*time.Second, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Reason == rolesyncv1.ReasonNoMatch && strings.Contains(e.Note, "Login denied") {
				return nil
			}
		}
		return fmt.Errorf("no login-denied authn.Event")
	})
}

func TestFirstLoginOnlyKeepsTheStoredClaims(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping+"  syncPolicy: FirstLoginOnly\n")
	first := postEvent(t, ns, event("f-1", "erin", time.Now().Add(-time.Second), map[string]any{"groups": []any{"platform"}}))
	if first.status != http.StatusOK {
		t.Fatalf("%d %s", first.status, first.body)
	}
	waitUntil(t, 30*time.Second, func() error { // the cache has the user
		u, err := srv.findUser(context.Background(), ns, &authn.Event{UserID: "erin", Issuer: idpIssuer}, false)
		if err == nil && u == nil {
			err = fmt.Errorf("not cached yet")
		}
		return err
	})
	second := postEvent(t, ns, event("f-2", "erin", time.Now(), map[string]any{"groups": []any{"admins-all"}}))
	if second.status != http.StatusOK || second.resp.Role != rolesyncv1.RoleInternalUser {
		t.Fatalf("second login: %d %s", second.status, second.body)
	}
	pu := getUser(t, ns, first.resp.ProxyUser.Name)
	if g := claimsOf(t, pu)["groups"].([]any); len(g) != 1 || g[0] != "platform" {
		t.Fatalf("claims replaced: %v", g)
	}
}

func TestConcurrentEventsLeaveTheNewest(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	const n = 100
	order := rand.Perm(n)
	var wg sync.WaitGroup
	statuses, errs := make([]int, n), make([]error, n)
	for i, k := range order {
		wg.Go(func() {
			ev := inNS(ns, event(fmt.Sprintf("c-%d", k), "frank", base.Add(time.Duration(k)*100*time.Millisecond),
				map[string]any{"groups": []any{"platform", fmt.Sprintf("login-%03d", k)}}))
			body, _ := json.Marshal(ev)
			sig := authn.Sign([]byte(secrets[0]), body, time.Now())
			recordSignature(sig)
			r, err := trySend(http.MethodPost, eventsPath(ns), "application/json", body, map[string]string{authn.SignatureHeader: sig})
			statuses[i], errs[i] = r.status, err
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if errs[i] != nil || s != http.StatusOK {
			t.Fatalf("event %d: status %d %v", order[i], s, errs[i])
		}
	}
	users := snapshot(t, ns)
	if len(users) != 1 {
		t.Fatalf("%d ProxyUsers for one person", len(users))
	}
	pu := getUser(t, ns, proxyuser.Name(idpIssuer, "frank"))
	newest := base.Add((n - 1) * 100 * time.Millisecond)
	if !pu.Spec.LastLoginTime.Time.Equal(newest) {
		t.Fatalf("lastLoginTime %s, want the newest %s", pu.Spec.LastLoginTime.Time, newest)
	}
	g := claimsOf(t, pu)["groups"].([]any)
	_ = g // groups is the mapped path: the newest event's list is stored whole
	if len(g) != 2 || g[1] != fmt.Sprintf("login-%03d", n-1) {
		t.Fatalf("claims %v are not the newest event's", g)
	}
}

func TestRotatedSecretFile(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	newSecret := "rotated-in-secret-0123456789abcdef0123456"
	secretsUsed.Store(newSecret, true)
	body := func(id string) []byte {
		b, _ := json.Marshal(inNS(ns, event(id, "gina", time.Now(), map[string]any{"groups": []any{"platform"}})))
		return b
	}
	if r := postSigned(t, ns, body("r-1"), newSecret, time.Time{}); r.status != http.StatusUnauthorized {
		t.Fatalf("an unknown secret was accepted: %d", r.status)
	}
	orig, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(secretFile, orig, 0o600) })
	if err := os.WriteFile(secretFile, []byte(newSecret+"\n"+secrets[0]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(secretFile, future, future)
	waitUntil(t, 10*time.Second, func() error {
		if r := postSigned(t, ns, body(fmt.Sprintf("r-%d", time.Now().UnixNano())), newSecret, time.Time{}); r.status != http.StatusOK {
			return fmt.Errorf("new secret: %d %s", r.status, r.body)
		}
		return nil
	})
	if r := postSigned(t, ns, body("r-old"), secrets[1], time.Time{}); r.status != http.StatusUnauthorized {
		t.Fatalf("a secret removed from the file is still accepted: %d", r.status)
	}
}

var _ = apiextensionsv1.JSON{}

// TestStaleEventAnswersNoMoreThanItsOwnClaims: an event older than the
// stored login answers the lower of what the stored claims and its own
// claims give, and is denied when its own claims grant nothing.
func TestStaleEventAnswersNoMoreThanItsOwnClaims(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	now := time.Now().Truncate(time.Second)
	r := postEvent(t, ns, event("s-new", "stella", now, map[string]any{"groups": []any{"admins-all"}}))
	if r.status != http.StatusOK || r.resp.Role != rolesyncv1.RoleProxyAdmin {
		t.Fatalf("%d %s", r.status, r.body)
	}
	lower := postEvent(t, ns, event("s-old-1", "stella", now.Add(-time.Minute), map[string]any{"groups": []any{"platform"}}))
	if lower.status != http.StatusOK || !lower.resp.Stale || lower.resp.Role != rolesyncv1.RoleInternalUser {
		t.Fatalf("stale event with lower claims: %d %s", lower.status, lower.body)
	}
	none := postEvent(t, ns, event("s-old-2", "stella", now.Add(-2*time.Minute), map[string]any{"groups": []any{"sales"}}))
	if none.status != http.StatusForbidden || !none.err.Denied {
		t.Fatalf("stale event whose claims grant nothing: %d %s", none.status, none.body)
	}
	higher := postEvent(t, ns, event("s-old-3", "stella", now.Add(-3*time.Minute), map[string]any{"groups": []any{"admins-all", "platform"}}))
	if higher.status != http.StatusOK || higher.resp.Role != rolesyncv1.RoleProxyAdmin {
		t.Fatalf("stale event: %d %s", higher.status, higher.body)
	}
	if g := claimsOf(t, getUser(t, ns, r.resp.ProxyUser.Name))["groups"].([]any); len(g) != 1 || g[0] != "admins-all" {
		t.Fatalf("a stale event changed the claims: %v", g)
	}
}

// TestRevokedSecretsFailClosed: a secrets file that is emptied, garbled or
// deleted means no credentials (503 NoCredentials), not the last good ones.
func TestRevokedSecretsFailClosed(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	orig, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restoreSecrets(orig) })
	body := func(id string) []byte {
		b, _ := json.Marshal(inNS(ns, event(id, "rex", time.Now(), map[string]any{"groups": []any{"platform"}})))
		return b
	}
	for i, damage := range []func() error{
		func() error { return writeAtomic(secretFile, nil) },
		func() error { return writeAtomic(secretFile, []byte("short\n")) },
		func() error { return os.Remove(secretFile) },
	} {
		if err := damage(); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, func() error {
			r := postSigned(t, ns, body(fmt.Sprintf("rev-%d-%d", i, time.Now().UnixNano())), secrets[0], time.Time{})
			if r.status != http.StatusServiceUnavailable || r.err.Reason != ReasonNoCredentials {
				return fmt.Errorf("damage %d: %d %s", i, r.status, r.body)
			}
			return nil
		})
		before := snapshot(t, ns)
		r := postSigned(t, ns, body(fmt.Sprintf("rev2-%d", i)), secrets[0], time.Time{})
		if r.status != http.StatusServiceUnavailable || !maps.Equal(before, snapshot(t, ns)) {
			t.Fatalf("damage %d: %d, ProxyUsers written without credentials", i, r.status)
		}
		if err := writeAtomic(secretFile, orig); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, func() error {
			if r := postSigned(t, ns, body(fmt.Sprintf("ok-%d-%d", i, time.Now().UnixNano())), secrets[0], time.Time{}); r.status != http.StatusOK {
				return fmt.Errorf("restored file: %d %s", r.status, r.body)
			}
			return nil
		})
	}
}

// TestExactClaimNumbers: 9007199254740993 is not 9007199254740992.
func TestExactClaimNumbers(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, `metadata: {name: ids}
spec:
  claim: employee_id
  rules:
  - {equals: "9007199254740992", role: proxy_admin}
  - {equals: "9007199254740993", role: internal_user}
  onNoMatch: Deny
`)
	body := []byte(`{"id":"n-1","time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","userID":"num","namespace":"` + ns + `","issuer":"` + idpIssuer + `","claims":{"employee_id":9007199254740993}}`)
	r := postSigned(t, ns, body, secrets[0], time.Time{})
	if r.status != http.StatusOK || r.resp.Role != rolesyncv1.RoleInternalUser {
		t.Fatalf("%d %s", r.status, r.body)
	}
	waitUntil(t, 30*time.Second, func() error { // the controller decides the same from the stored claims
		if u := getUser(t, ns, r.resp.ProxyUser.Name); u.Status.Role != rolesyncv1.RoleInternalUser {
			return fmt.Errorf("controller decided %q", u.Status.Role)
		}
		return nil
	})
}

// writeAtomic replaces a file as a Secret volume update does (write, rename).
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// TestEventsAreBoundToTheirNamespace: an event signs the namespace it is
// for; posted to another namespace (a replay against another replica or
// path) it is refused, and a secret scoped to one namespace authenticates
// events for that namespace only.
func TestEventsAreBoundToTheirNamespace(t *testing.T) {
	needSuite(t)
	a, b := newNamespace(t), newNamespace(t)
	withMapping(t, a, strictMapping)
	withMapping(t, b, strictMapping)
	ev := event("ns-1", "nina", time.Now(), map[string]any{"groups": []any{"platform"}})
	ev["namespace"] = a
	body, _ := json.Marshal(ev)
	if r := postSigned(t, b, body, secrets[0], time.Time{}); r.status != http.StatusUnauthorized || r.err.Reason != ReasonNamespace {
		t.Fatalf("an event signed for %s posted to %s: %d %s", a, b, r.status, r.body)
	}
	if n := len(snapshot(t, b)); n != 0 {
		t.Fatalf("%d ProxyUsers created in the wrong namespace", n)
	}
	if r := postSigned(t, a, body, secrets[0], time.Time{}); r.status != http.StatusOK {
		t.Fatalf("the event in its own namespace: %d %s", r.status, r.body)
	}

	// A secret scoped to namespace a.
	scoped := "scoped-secret-for-one-namespace-0123456789"
	secretsUsed.Store(scoped, true)
	orig, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restoreSecrets(orig) })
	if err := writeAtomic(secretFile, append(append([]byte(nil), orig...), []byte(a+": "+scoped+"\n")...)); err != nil {
		t.Fatal(err)
	}
	plain := func(id string) []byte {
		b, _ := json.Marshal(inNS(a, event(id, "otto", time.Now(), map[string]any{"groups": []any{"platform"}})))
		return b
	}
	waitUntil(t, 10*time.Second, func() error {
		if r := postSigned(t, a, plain(fmt.Sprintf("sc-a-%d", time.Now().UnixNano())), scoped, time.Time{}); r.status != http.StatusOK {
			return fmt.Errorf("scoped secret in its namespace: %d %s", r.status, r.body)
		}
		return nil
	})
	if r := postSigned(t, b, plain("sc-b"), scoped, time.Time{}); r.status != http.StatusUnauthorized || r.err.Reason != ReasonBadSignature {
		t.Fatalf("a secret scoped to %s used for %s: %d %s", a, b, r.status, r.body)
	}
}

// TestSquattedNameIsRefused: a ProxyUser of another identity under the name
// derived for a login is never written with that login.
func TestSquattedNameIsRefused(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	squat := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: proxyuser.Name(idpIssuer, "sam")}}
	squat.Spec.UserID = "someone-else"
	if err := k8sClient.Create(context.Background(), squat); err != nil {
		t.Fatal(err)
	}
	r := postEvent(t, ns, event("sq-1", "sam", time.Now(), map[string]any{"groups": []any{"admins-all"}}))
	if r.status != http.StatusConflict || r.err.Reason != ReasonNameTaken {
		t.Fatalf("%d %s", r.status, r.body)
	}
	after := getUser(t, ns, squat.Name)
	if after.Generation != 1 || after.Spec.UserID != "someone-else" || after.Spec.Claims != nil || len(snapshot(t, ns)) != 1 {
		t.Fatalf("the squatted ProxyUser was written: generation %d spec %+v", after.Generation, after.Spec)
	}
}

// TestFutureDatedEventCannotPinLogins: an event dated minutes after its
// signature time is ordered by when the server received it, so the next
// genuine login (a demotion) is not "stale" and takes effect at once.
func TestFutureDatedEventCannotPinLogins(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	sent := time.Now()
	ahead := event("future-1", "fiona", sent.Add(4*time.Minute), map[string]any{"groups": []any{"admins-all"}})
	if r := postEvent(t, ns, ahead); r.status != http.StatusOK || r.resp.Role != rolesyncv1.RoleProxyAdmin {
		t.Fatalf("future-dated event: %d %s", r.status, r.body)
	}
	received := time.Now()
	pu := getUser(t, ns, proxyuser.Name(idpIssuer, "fiona"))
	if lt := pu.Spec.LastLoginTime; lt == nil || lt.After(received) {
		t.Fatalf("lastLoginTime %v is later than the event was received (%v)", lt, received)
	}
	demoted := event("future-2", "fiona", time.Now(), map[string]any{"groups": []any{"platform"}})
	r := postEvent(t, ns, demoted)
	if r.status != http.StatusOK || r.resp.Stale || r.resp.Role != rolesyncv1.RoleInternalUser {
		t.Fatalf("the genuine login after a future-dated one: %d %s", r.status, r.body)
	}
	if g := claimsOf(t, getUser(t, ns, pu.Name))["groups"].([]any); len(g) != 1 || g[0] != "platform" {
		t.Fatalf("stored claims %v are not the genuine login's", g)
	}
}

// startReplica runs a second replica's login server: its own manager
// (cache and indexes) and its own replay cache, the suite's RoleMapping
// registry. It returns the replica's base URL and cached client.
func startReplica(t *testing.T) (string, client.Client) {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := controllers.SetupIndexes(ctx, mgr); err != nil {
		t.Fatal(err)
	}
	second, err := NewServer(srv.opts, mgr.GetClient(), mgr.GetAPIReader(), registry, nil, srv.log.WithName("replica-2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(second); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	addr, err := second.Addr(wctx)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr, mgr.GetClient()
}

// TestLoginIsAcceptedOnceAcrossReplicas: each replica's replay cache is
// its own, but a ProxyUser records the logins it accepted
// (spec.recentLogins): a signed event accepted by one replica is a replay
// on the other, and an identity-provider token (which names no namespace)
// accepted in one namespace is a replay in another, on either replica.
func TestLoginIsAcceptedOnceAcrossReplicas(t *testing.T) {
	needSuite(t)
	second, secondClient := startReplica(t)
	a := newNamespace(t)
	withMapping(t, a, strictMapping)
	body, _ := json.Marshal(inNS(a, event("once-"+randID(), "olga", time.Now(), map[string]any{"groups": []any{"platform"}})))
	sig := authn.Sign([]byte(secrets[0]), body, time.Now())
	recordSignature(sig)
	hdr := map[string]string{authn.SignatureHeader: sig}
	if r, err := trySendTo(baseURL, http.MethodPost, eventsPath(a), "application/json", body, hdr); err != nil || r.status != http.StatusOK {
		t.Fatalf("first delivery: %v %d %s", err, r.status, r.body)
	}
	r, err := trySendTo(second, http.MethodPost, eventsPath(a), "application/json", body, hdr)
	if err != nil || r.status != http.StatusConflict || r.err.Reason != ReasonReplay {
		t.Fatalf("the same event on the other replica: %v %d %s", err, r.status, r.body)
	}
	pu := getUser(t, a, proxyuser.Name(idpIssuer, "olga"))
	if len(pu.Spec.RecentLogins) != 1 || strings.Contains(string(body), pu.Spec.RecentLogins[0].Digest) {
		t.Fatalf("recentLogins %v: want one digest (never the event)", pu.Spec.RecentLogins)
	}

	// An identity-provider token trusted in every namespace.
	c, d := newNamespace(t), newNamespace(t)
	withMapping(t, c, tokenMapping)
	withMapping(t, d, tokenMapping)
	tok := login(t, provider, keycloakUser("oscar", []string{"admin"}, nil)).IDToken
	if r := postIdPToken(t, c, tok); r.status != http.StatusOK {
		t.Fatalf("the token in %s: %d %s", c, r.status, r.body)
	}
	// The other replica reads ProxyUsers of other namespaces from its cache:
	// wait until the first acceptance is in it (the documented gap).
	name := proxyuser.Name(provider.Issuer(), "oscar")
	waitUntil(t, 10*time.Second, func() error {
		var got rolesyncv1.ProxyUser
		if err := secondClient.Get(context.Background(), client.ObjectKey{Namespace: c, Name: name}, &got); err != nil || len(got.Spec.RecentLogins) == 0 {
			return fmt.Errorf("not in the second replica's cache yet: %w", err)
		}
		return nil
	})
	r, err = trySendTo(second, http.MethodPost, tokensPath(d), "application/jwt", []byte(tok), nil)
	if err != nil || r.status != http.StatusConflict || r.err.Reason != ReasonReplay || !strings.Contains(r.err.Error, c) {
		t.Fatalf("the token in %s on the other replica: %v %d %s", d, err, r.status, r.body)
	}
	if r := postIdPToken(t, d, tok); r.status != http.StatusConflict || r.err.Reason != ReasonReplay {
		t.Fatalf("the token in %s on the same replica: %d %s", d, r.status, r.body)
	}
	if n := len(snapshot(t, d)); n != 0 {
		t.Fatalf("a replayed token wrote %d ProxyUsers in %s", n, d)
	}
}

// TestLoginBindsToTheDirectoryUser: a ProxyUser the directory (SCIM) made
// before the person's first login is theirs: a login with its email
// records onto it (no second ProxyUser), keeping its userID; and once a
// directory group has listed the user, the login's groups claim cannot
// grant what the directory took away.
func TestLoginBindsToTheDirectoryUser(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	now := metav1.NewMicroTime(time.Now())
	dir := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kim-directory"},
		Spec: rolesyncv1.ProxyUserSpec{UserID: "kim@example.com", Email: "kim@example.com",
			Directory: &rolesyncv1.DirectoryUser{UserName: "kim@example.com", Active: true, UpdatedAt: &now}}}
	if err := k8sClient.Create(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, func() error { // the login server reads its cache
		users, err := proxyuser.ByIndex(context.Background(), srv.client, ns, proxyuser.EmailIndex, "kim@example.com")
		if err != nil || len(users) != 1 {
			return fmt.Errorf("not in the cache yet: %w", err)
		}
		return nil
	})
	ev := event("dir-1", "f3c1-kim", time.Now(), map[string]any{"groups": []any{"platform"}})
	ev["email"] = "Kim@Example.com"
	r := postEvent(t, ns, ev)
	if r.status != http.StatusOK || r.resp.ProxyUser == nil || r.resp.ProxyUser.Name != dir.Name {
		t.Fatalf("a login with the directory user's email: %d %s", r.status, r.body)
	}
	if n := len(snapshot(t, ns)); n != 1 {
		t.Fatalf("%d ProxyUsers: the login made its own", n)
	}
	got := getUser(t, ns, dir.Name)
	if got.Spec.UserID != "kim@example.com" || got.Spec.Issuer != idpIssuer || got.Spec.LastLoginTime == nil {
		t.Fatalf("the directory user after the login: %+v", got.Spec)
	}
	// A look-alike email never binds (the Kelvin sign).
	alike := event("dir-2", "mallory", time.Now(), map[string]any{"groups": []any{"platform"}})
	alike["email"] = "\u212aim@example.com"
	if r := postEvent(t, ns, alike); r.status != http.StatusOK || r.resp.ProxyUser.Name == dir.Name {
		t.Fatalf("a look-alike email bound to the directory user: %d %s", r.status, r.body)
	}

	// The directory speaks for kim's groups: none. A login saying admins
	// cannot put them back.
	base := got.DeepCopy()
	got.Spec.Directory.GroupsManaged = true
	if err := k8sClient.Patch(context.Background(), got, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, func() error {
		var pu rolesyncv1.ProxyUser
		if err := srv.client.Get(context.Background(), client.ObjectKeyFromObject(got), &pu); err != nil || !pu.Spec.Directory.GroupsManaged {
			return fmt.Errorf("not in the cache yet: %w", err)
		}
		return nil
	})
	admins := event("dir-3", "f3c1-kim", time.Now(), map[string]any{"groups": []any{"admins-all"}})
	admins["email"] = "kim@example.com"
	if r := postEvent(t, ns, admins); r.status != http.StatusForbidden || !r.err.Denied {
		t.Fatalf("a login claiming a group the directory does not list: %d %s", r.status, r.body)
	}
}

// histogramCount is how many observations h holds.
func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
