package controllers

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
				if res.Message == "" || contains(res.Message, "ns/") {
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

func TestSetProxyUserStatus(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	earlier := metav1.NewTime(now.Add(-time.Hour))
	allowed := resolution{Role: rolesyncv1.RoleInternalUser, Reason: rolesyncv1.ReasonResolved, Message: "m",
		Source: &rolesyncv1.RoleSource{Type: rolesyncv1.SourceRoleMapping, RoleMapping: "k"}}
	denied := resolution{Denied: true, Reason: rolesyncv1.ReasonNoMatch, Message: "no rule matched"}
	type want struct {
		ready, synced, drifted, denied string // "Status/Reason", "" = absent
		syncedRole                     rolesyncv1.Role
		lastSync                       *metav1.Time
		observed                       bool
	}
	cases := []struct {
		name   string
		before rolesyncv1.ProxyUserStatus
		res    resolution
		sr     syncResult
		want   want
	}{
		{"written", rolesyncv1.ProxyUserStatus{}, allowed, syncResult{Wrote: true},
			want{"True/Resolved", "True/Synced", "False/NoDrift", "False/Allowed", rolesyncv1.RoleInternalUser, &now, true}},
		{"confirmed keeps lastSyncTime", rolesyncv1.ProxyUserStatus{SyncedRole: rolesyncv1.RoleInternalUser, LastSyncTime: &earlier}, allowed, syncResult{},
			want{"True/Resolved", "True/Synced", "False/NoDrift", "False/Allowed", rolesyncv1.RoleInternalUser, &earlier, true}},
		{"no database", rolesyncv1.ProxyUserStatus{}, allowed, syncResult{NoDatabase: true},
			want{"True/Resolved", "Unknown/NoDatabase", "Unknown/NoDatabase", "False/Allowed", "", nil, true}},
		{"write failed", rolesyncv1.ProxyUserStatus{SyncedRole: rolesyncv1.RoleProxyAdmin, LastSyncTime: &earlier}, allowed, syncResult{Err: errors.New("db down")},
			want{"False/SyncFailed", "False/SyncFailed", "", "False/Allowed", rolesyncv1.RoleProxyAdmin, &earlier, false}},
		{"drift reported", rolesyncv1.ProxyUserStatus{SyncedRole: rolesyncv1.RoleInternalUser, LastSyncTime: &earlier}, allowed, syncResult{Drift: driftReported, RowRole: "proxy_admin"},
			want{"False/DriftDetected", "False/DriftDetected", "True/DriftDetected", "False/Allowed", rolesyncv1.RoleInternalUser, &earlier, false}},
		{"drift corrected", rolesyncv1.ProxyUserStatus{SyncedRole: rolesyncv1.RoleInternalUser, LastSyncTime: &earlier}, allowed, syncResult{Wrote: true, Drift: driftCorrected, RowRole: "proxy_admin"},
			want{"True/Resolved", "True/Synced", "False/DriftCorrected", "False/Allowed", rolesyncv1.RoleInternalUser, &now, true}},
		{"denied downgrades", rolesyncv1.ProxyUserStatus{Role: rolesyncv1.RoleProxyAdmin, SyncedRole: rolesyncv1.RoleProxyAdmin}, denied, syncResult{Wrote: true},
			want{"True/NoMatch", "True/Synced", "False/NoDrift", "True/NoMatch", rolesyncv1.RoleInternalUserViewer, &now, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pu := &rolesyncv1.ProxyUser{Status: tc.before}
			pu.Generation = 3
			setProxyUserStatus(pu, tc.res, tc.sr, now)
			for typ, w := range map[string]string{
				rolesyncv1.ConditionReady: tc.want.ready, rolesyncv1.ConditionSynced: tc.want.synced,
				rolesyncv1.ConditionDrifted: tc.want.drifted, rolesyncv1.ConditionDenied: tc.want.denied,
			} {
				c := apimeta.FindStatusCondition(pu.Status.Conditions, typ)
				got := ""
				if c != nil {
					got = string(c.Status) + "/" + c.Reason
					if c.ObservedGeneration != 3 {
						t.Errorf("%s observedGeneration %d", typ, c.ObservedGeneration)
					}
				}
				if got != w {
					t.Errorf("%s = %q, want %q", typ, got, w)
				}
			}
			if pu.Status.SyncedRole != tc.want.syncedRole {
				t.Errorf("syncedRole %q, want %q", pu.Status.SyncedRole, tc.want.syncedRole)
			}
			if (pu.Status.LastSyncTime == nil) != (tc.want.lastSync == nil) || (tc.want.lastSync != nil && !pu.Status.LastSyncTime.Equal(tc.want.lastSync)) {
				t.Errorf("lastSyncTime %v, want %v", pu.Status.LastSyncTime, tc.want.lastSync)
			}
			if (pu.Status.ObservedGeneration == 3) != tc.want.observed {
				t.Errorf("observedGeneration %d (want set: %v)", pu.Status.ObservedGeneration, tc.want.observed)
			}
			if pu.Status.Role != tc.res.Role {
				t.Errorf("role %q", pu.Status.Role)
			}
		})
	}
}

func TestSetDuplicateStatus(t *testing.T) {
	pu := &rolesyncv1.ProxyUser{Status: rolesyncv1.ProxyUserStatus{Role: rolesyncv1.RoleProxyAdmin, SyncedRole: rolesyncv1.RoleProxyAdmin}}
	pu.Generation = 2
	setProxyUserStatus(pu, resolution{Role: rolesyncv1.RoleProxyAdmin, Reason: rolesyncv1.ReasonOverride}, syncResult{}, metav1.Now())
	setDuplicateStatus(pu, "older")
	if pu.Status.Role != "" || pu.Status.SyncedRole != "" || pu.Status.Source != nil {
		t.Fatalf("duplicate keeps a role: %+v", pu.Status)
	}
	for _, typ := range []string{rolesyncv1.ConditionReady, rolesyncv1.ConditionSynced} {
		c := apimeta.FindStatusCondition(pu.Status.Conditions, typ)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != rolesyncv1.ReasonDuplicateUser || !contains(c.Message, "older") {
			t.Fatalf("%s: %+v", typ, c)
		}
	}
	if apimeta.FindStatusCondition(pu.Status.Conditions, rolesyncv1.ConditionDrifted) != nil {
		t.Fatal("a duplicate reports drift")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

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
