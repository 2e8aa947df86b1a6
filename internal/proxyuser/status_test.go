package proxyuser

import (
	"errors"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/rolemap"
)

func TestSetProxyUserStatus(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	earlier := metav1.NewTime(now.Add(-time.Hour))
	allowed := rolemap.Resolution{Role: rolesyncv1.RoleInternalUser, Reason: rolesyncv1.ReasonResolved, Message: "m",
		Source: &rolesyncv1.RoleSource{Type: rolesyncv1.SourceRoleMapping, RoleMapping: "k"}}
	denied := rolemap.Resolution{Denied: true, Reason: rolesyncv1.ReasonNoMatch, Message: "no rule matched"}
	type want struct {
		ready, synced, drifted, denied string // "Status/Reason", "" = absent
		syncedRole                     rolesyncv1.Role
		lastSync                       *metav1.Time
		observed                       bool
	}
	cases := []struct {
		name   string
		before rolesyncv1.ProxyUserStatus
		res    rolemap.Resolution
		sr     SyncResult
		want   want
	}{
		{"written", rolesyncv1.ProxyUserStatus{}, allowed, SyncResult{Wrote: true},
			want{"True/Resolved", "True/Synced", "False/NoDrift", "False/Allowed", rolesyncv1.RoleInternalUser, &now, true}},
		{"confirmed keeps lastSyncTime", rolesyncv1.ProxyUserStatus{SyncedRole: rolesyncv1.RoleInternalUser, LastSyncTime: &earlier}, allowed, SyncResult{},
			want{"True/Resolved", "True/Synced", "False/NoDrift", "False/Allowed", rolesyncv1.RoleInternalUser, &earlier, true}},
		{"no database", rolesyncv1.ProxyUserStatus{}, allowed, SyncResult{NoDatabase: true},
			want{"True/Resolved", "Unknown/NoDatabase", "Unknown/NoDatabase", "False/Allowed", "", nil, true}},
		{"write failed", rolesyncv1.ProxyUserStatus{SyncedRole: rolesyncv1.RoleProxyAdmin, LastSyncTime: &earlier}, allowed, SyncResult{Err: errors.New("db down")},
			want{"False/SyncFailed", "False/SyncFailed", "", "False/Allowed", rolesyncv1.RoleProxyAdmin, &earlier, false}},
		{"drift reported", rolesyncv1.ProxyUserStatus{SyncedRole: rolesyncv1.RoleInternalUser, LastSyncTime: &earlier}, allowed, SyncResult{Drift: DriftReported, RowRole: "proxy_admin"},
			want{"False/DriftDetected", "False/DriftDetected", "True/DriftDetected", "False/Allowed", rolesyncv1.RoleInternalUser, &earlier, false}},
		{"drift corrected", rolesyncv1.ProxyUserStatus{SyncedRole: rolesyncv1.RoleInternalUser, LastSyncTime: &earlier}, allowed, SyncResult{Wrote: true, Drift: DriftCorrected, RowRole: "proxy_admin"},
			want{"True/Resolved", "True/Synced", "False/DriftCorrected", "False/Allowed", rolesyncv1.RoleInternalUser, &now, true}},
		{"denied downgrades", rolesyncv1.ProxyUserStatus{Role: rolesyncv1.RoleProxyAdmin, SyncedRole: rolesyncv1.RoleProxyAdmin}, denied, SyncResult{Wrote: true},
			want{"True/NoMatch", "True/Synced", "False/NoDrift", "True/NoMatch", rolesyncv1.RoleInternalUserViewer, &now, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pu := &rolesyncv1.ProxyUser{Status: tc.before}
			pu.Generation = 3
			SetStatus(pu, tc.res, tc.sr, now)
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
	SetStatus(pu, rolemap.Resolution{Role: rolesyncv1.RoleProxyAdmin, Reason: rolesyncv1.ReasonOverride}, SyncResult{}, metav1.Now())
	SetDuplicateStatus(pu, "older")
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
