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
			SetStatus(pu, tc.res, tc.sr, TeamsResult{}, now)
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
	SetStatus(pu, rolemap.Resolution{Role: rolesyncv1.RoleProxyAdmin, Reason: rolesyncv1.ReasonOverride}, SyncResult{}, TeamsResult{}, metav1.Now())
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

// Ready summarizes every step in one order (ReadySteps): False with the
// reason of the first failing step, team memberships included.
func TestReadySummarizesEverySteps(t *testing.T) {
	allowed := rolemap.Resolution{Role: rolesyncv1.RoleInternalUser, Reason: rolesyncv1.ReasonResolved, Message: "keycloak#0"}
	denied := rolemap.Resolution{Denied: true, Reason: rolesyncv1.ReasonNoMatch, Message: "no rule matched"}
	grants := []rolesyncv1.TeamMembership{{Team: "search", Role: rolesyncv1.TeamRoleUser}}
	for _, tc := range []struct {
		name      string
		res       rolemap.Resolution
		sr        SyncResult
		tr        TeamsResult
		blocked   string // a DeleteBlocked message, set after the reconcile
		want      string // Ready "Status/Reason"
		observed  bool
		messageOf string // the condition whose message Ready carries
	}{
		{"all synced", allowed, SyncResult{Wrote: true, Row: "u"}, TeamsResult{Active: true, Grants: grants}, "", "True/Resolved", true, ""},
		{"no teams at all", allowed, SyncResult{Row: "u"}, TeamsResult{}, "", "True/Resolved", true, ""},
		{"denied is a decision, not a failure", denied, SyncResult{Wrote: true, Row: "u"}, TeamsResult{Active: true}, "", "True/NoMatch", true, ""},
		{"a team that does not exist", allowed, SyncResult{Row: "u"}, TeamsResult{Active: true, Grants: grants, NotFound: []string{"search"}}, "", "False/TeamNotFound", false, rolesyncv1.ConditionTeamsSynced},
		{"a membership write failed", allowed, SyncResult{Row: "u"}, TeamsResult{Active: true, Grants: grants, Err: errors.New("lock timeout")}, "", "False/SyncFailed", false, rolesyncv1.ConditionTeamsSynced},
		{"team drift reported", allowed, SyncResult{Row: "u"}, TeamsResult{Active: true, Grants: grants, Reported: []string{"search (removed)"}}, "", "False/DriftDetected", false, rolesyncv1.ConditionTeamsSynced},
		{"a template dropped is still ready", allowed, SyncResult{Row: "u"}, TeamsResult{Active: true, Grants: grants, Dropped: []string{"x"}}, "", "True/Resolved", true, ""},
		{"the row comes before the teams", allowed, SyncResult{Waiting: true}, TeamsResult{Active: true, Grants: grants, Waiting: true}, "", "False/WaitingForRow", false, rolesyncv1.ConditionSynced},
		{"a row conflict", allowed, SyncResult{Conflict: "other/u"}, TeamsResult{}, "", "False/RowConflict", false, rolesyncv1.ConditionSynced},
		{"ambiguous rows", allowed, SyncResult{Ambiguous: errors.New("two rows")}, TeamsResult{}, "", "False/AmbiguousUser", false, rolesyncv1.ConditionSynced},
		{"an unmanaged role", allowed, SyncResult{Row: "u", Unmanaged: "org_admin"}, TeamsResult{}, "", "False/UnmanagedRole", false, rolesyncv1.ConditionSynced},
		{"role drift reported", allowed, SyncResult{Row: "u", Drift: DriftReported, RowRole: "proxy_admin"}, TeamsResult{}, "", "False/DriftDetected", false, rolesyncv1.ConditionSynced},
		{"no database is not a failure", allowed, SyncResult{NoDatabase: true}, TeamsResult{Active: true, NoDatabase: true}, "", "True/Resolved", true, ""},
		{"a blocked delete comes first", allowed, SyncResult{Err: errors.New("db down")}, TeamsResult{}, "rows of LiteLLM_X", "False/DeleteBlocked", false, rolesyncv1.ConditionDeleteBlocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pu := &rolesyncv1.ProxyUser{}
			pu.Generation = 4
			SetStatus(pu, tc.res, tc.sr, tc.tr, metav1.Now())
			if tc.blocked != "" {
				SetDeleteBlocked(pu, tc.blocked)
			}
			c := apimeta.FindStatusCondition(pu.Status.Conditions, rolesyncv1.ConditionReady)
			if got := string(c.Status) + "/" + c.Reason; got != tc.want {
				t.Fatalf("Ready %s, want %s", got, tc.want)
			}
			if (pu.Status.ObservedGeneration == 4) != tc.observed {
				t.Fatalf("observedGeneration %d (want set: %v)", pu.Status.ObservedGeneration, tc.observed)
			}
			if tc.messageOf != "" {
				if step := apimeta.FindStatusCondition(pu.Status.Conditions, tc.messageOf); step.Message != c.Message {
					t.Fatalf("Ready says %q, the failing step %s says %q", c.Message, tc.messageOf, step.Message)
				}
			}
		})
	}
}

// status.deactivated says what the bound row's activation is, and the
// Synced message of a denied, deactivated user says every key is refused.
func TestDeactivatedStatus(t *testing.T) {
	denied := rolemap.Resolution{Denied: true, Reason: rolesyncv1.ReasonNoMatch, Message: "no rule matched"}
	pu := &rolesyncv1.ProxyUser{}
	SetStatus(pu, denied, SyncResult{Wrote: true, Row: "u", Inactive: true}, TeamsResult{}, metav1.Now())
	c := apimeta.FindStatusCondition(pu.Status.Conditions, rolesyncv1.ConditionSynced)
	if !pu.Status.Deactivated || !strings.Contains(c.Message, "deactivated in LiteLLM") {
		t.Fatalf("denied and deactivated: %v, Synced %q", pu.Status.Deactivated, c.Message)
	}
	SetStatus(pu, denied, SyncResult{Err: errors.New("db down")}, TeamsResult{}, metav1.Now())
	if !pu.Status.Deactivated {
		t.Fatal("a failed write forgot what the row held")
	}
	SetStatus(pu, denied, SyncResult{Waiting: true}, TeamsResult{}, metav1.Now())
	if pu.Status.Deactivated {
		t.Fatal("deactivated while no row is bound")
	}
	pu.Status.Deactivated = true
	SetStatus(pu, denied, SyncResult{NoDatabase: true}, TeamsResult{}, metav1.Now())
	if pu.Status.Deactivated {
		t.Fatal("deactivated without a database")
	}
}

// status.inForceBy says when a write is in force in LiteLLM at the latest:
// the write's time plus LiteLLM's user cache TTL; a confirmation that
// writes nothing keeps it.
func TestInForceBy(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	allowed := rolemap.Resolution{Role: rolesyncv1.RoleInternalUser, Reason: rolesyncv1.ReasonResolved}
	pu := &rolesyncv1.ProxyUser{}
	SetStatus(pu, allowed, SyncResult{Wrote: true, Row: "u", CacheTTL: time.Minute}, TeamsResult{}, now)
	if pu.Status.InForceBy == nil || !pu.Status.InForceBy.Time.Equal(now.Add(time.Minute)) {
		t.Fatalf("inForceBy %v, want %v", pu.Status.InForceBy, now.Add(time.Minute))
	}
	SetStatus(pu, allowed, SyncResult{Row: "u", CacheTTL: time.Minute}, TeamsResult{}, metav1.NewTime(now.Add(time.Hour)))
	if !pu.Status.InForceBy.Time.Equal(now.Add(time.Minute)) {
		t.Fatalf("a confirmation moved inForceBy to %v", pu.Status.InForceBy)
	}
}
