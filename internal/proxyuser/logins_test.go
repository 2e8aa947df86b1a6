package proxyuser

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

func TestRecentLoginsAreBoundedAndExpire(t *testing.T) {
	const window = 10 * time.Minute
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var recent []rolesyncv1.LoginRecord
	for i := range 20 {
		recent = RecordLogin(recent, fmt.Sprintf("d%d", i), t0.Add(time.Duration(i)*time.Second), window)
	}
	if len(recent) != MaxRecentLogins || recent[0].Digest != "d4" || recent[len(recent)-1].Digest != "d19" {
		t.Fatalf("the newest %d must be kept, oldest first: %v", MaxRecentLogins, recent)
	}
	pu := &rolesyncv1.ProxyUser{Spec: rolesyncv1.ProxyUserSpec{RecentLogins: recent}}
	now := t0.Add(30 * time.Second)
	if !HasRecentLogin(pu, "d10", now, window) || HasRecentLogin(pu, "d2", now, window) || HasRecentLogin(pu, "other", now, window) {
		t.Fatal("HasRecentLogin must find exactly the recorded digests")
	}
	if HasRecentLogin(pu, "d19", t0.Add(19*time.Second+window), window) {
		t.Fatal("a record older than the window is no replay")
	}
	later := RecordLogin(recent, "new", t0.Add(window+5*time.Second), window)
	if len(later) != 15 || later[0].Digest != "d6" { // d4 and d5 are a window old
		t.Fatalf("expired records must be dropped: %v", later)
	}
	pu.Spec.RecentLogins = []rolesyncv1.LoginRecord{{Digest: "x", ReceivedAt: metav1.NewMicroTime(now)}}
	if got := RecordLogin(pu.Spec.RecentLogins, "x", now.Add(time.Second), window); len(got) != 1 {
		t.Fatalf("one digest is recorded once: %v", got)
	}
}
