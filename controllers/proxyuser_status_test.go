package controllers

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/tools/events"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/rolemap"
)

func engineFor(t *testing.T, docs ...string) *rolemap.Engine {
	t.Helper()
	var ms []*rolemap.Mapping
	for _, doc := range docs {
		m, errs := rolemap.Compile(roleMapping(t, "ns", doc))
		if m == nil {
			t.Fatal(errs)
		}
		ms = append(ms, m)
	}
	return rolemap.NewEngine(ms...)
}

func TestResolve(t *testing.T) {
	keycloak := engineFor(t, keycloakMapping)
	strict := engineFor(t, strictMapping)
	user := func(override rolesyncv1.Role) *rolesyncv1.ProxyUser {
		pu := &rolesyncv1.ProxyUser{}
		pu.Namespace = "ns"
		if override != "" {
			pu.Spec.RoleOverride = &override
		}
		return pu
	}
	cases := []struct {
		name    string
		pu      *rolesyncv1.ProxyUser
		engine  *rolemap.Engine
		claims  map[string]any
		role    rolesyncv1.Role
		denied  bool
		reason  string
		srcDesc string
	}{
		{"matched rule", user(""), keycloak, keycloakClaims("team-x"), rolesyncv1.RoleInternalUser, false, rolesyncv1.ReasonResolved, "keycloak#2 resource_access.litellm.roles=team-x"},
		{"highest privilege wins", user(""), keycloak, keycloakClaims("team-x", "litellm-admin"), rolesyncv1.RoleProxyAdmin, false, rolesyncv1.ReasonResolved, "keycloak#0 resource_access.litellm.roles=litellm-admin"},
		{"default role", user(""), keycloak, map[string]any{}, rolesyncv1.RoleInternalUserViewer, false, rolesyncv1.ReasonResolved, "keycloak default"},
		{"override beats mappings and ceiling", user(rolesyncv1.RoleProxyAdmin), keycloak, keycloakClaims("team-x"), rolesyncv1.RoleProxyAdmin, false, rolesyncv1.ReasonOverride, "override"},
		{"override beats a denial", user(rolesyncv1.RoleInternalUser), strict, nil, rolesyncv1.RoleInternalUser, false, rolesyncv1.ReasonOverride, "override"},
		{"strict denies", user(""), strict, map[string]any{"groups": []any{"sales"}}, "", true, rolesyncv1.ReasonNoMatch, ""},
		{"no mapping denies", user(""), rolemap.NewEngine(), keycloakClaims("litellm-admin"), "", true, rolesyncv1.ReasonNoRoleMapping, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := proxyuser.Decide(proxyuser.Input{Namespace: tc.pu.Namespace, Engine: tc.engine, Override: tc.pu.Spec.RoleOverride, Stored: tc.claims}).Resolution
			if res.Role != tc.role || res.Denied != tc.denied || res.Reason != tc.reason {
				t.Fatalf("got %+v", res)
			}
			if tc.denied {
				if res.Source != nil || res.RowRole() != rolesyncv1.RoleInternalUserViewer {
					t.Fatalf("denied: source %+v row role %q", res.Source, res.RowRole())
				}
				if res.Message == "" || strings.Contains(res.Message, "ns/") {
					t.Fatalf("message %q", res.Message)
				}
				return
			}
			if res.Source == nil || res.Source.Description != tc.srcDesc {
				t.Fatalf("source %+v, want description %q", res.Source, tc.srcDesc)
			}
		})
	}
}

func TestEventsAreBudgeted(t *testing.T) {
	rec := events.NewFakeRecorder(1000)
	r := &ProxyUserReconciler{Recorder: rec}
	pu := &rolesyncv1.ProxyUser{}
	before := testutil.ToFloat64(eventsDropped.WithLabelValues("BudgetTest"))
	for range 300 {
		r.eventf(pu, "Normal", "BudgetTest", "Test", "event %d", 1)
	}
	emitted := len(rec.Events)
	dropped := testutil.ToFloat64(eventsDropped.WithLabelValues("BudgetTest")) - before
	if emitted < DefaultEventBurst || emitted > DefaultEventBurst+10 {
		t.Fatalf("%d events emitted for 300 at once, want the burst of %d", emitted, DefaultEventBurst)
	}
	if int(dropped)+emitted != 300 {
		t.Fatalf("%d emitted + %v dropped != 300", emitted, dropped)
	}
}
