package review

import (
	"testing"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

func TestBrake(t *testing.T) {
	b := Brake{Percent: 10, MinUsers: 10}
	for _, tc := range []struct {
		lost, users int
		trips       bool
	}{
		{9, 20, false}, {10, 20, true}, // small namespace: the minimum decides
		{99, 1000, false}, {100, 1000, true}, // 10 % of 1,000
		{0, 0, false},
	} {
		if got := b.Trips(tc.lost, tc.users); got != tc.trips {
			t.Errorf("%d of %d: trips %v, want %v", tc.lost, tc.users, got, tc.trips)
		}
	}
	if (Brake{}).Trips(1000, 1000) {
		t.Fatal("a brake with Percent 0 is off")
	}
}

func TestLossesCountDenialsAndDemotionsOnly(t *testing.T) {
	viewer, user, admin := Outcome{Role: rolesyncv1.RoleInternalUserViewer}, Outcome{Role: rolesyncv1.RoleInternalUser}, Outcome{Role: rolesyncv1.RoleProxyAdmin}
	denied := Outcome{Denied: true, Reason: rolesyncv1.ReasonNoMatch}
	r := Report{Changes: []Change{
		{Namespace: "a", Old: admin, New: user},    // demoted
		{Namespace: "a", Old: user, New: denied},   // denied
		{Namespace: "a", Old: viewer, New: admin},  // a gain
		{Namespace: "a", Old: denied, New: denied}, // stays denied (another reason)
		{Namespace: "b", Old: user, New: user},     // another rule, same role
		{Namespace: "b", Old: admin, New: denied},  // denied
	}}
	got := r.Losses()
	if got["a"] != 2 || got["b"] != 1 {
		t.Fatalf("losses %v", got)
	}
}
