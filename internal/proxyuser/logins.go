package proxyuser

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// MaxRecentLogins bounds spec.recentLogins (its CRD MaxItems).
const MaxRecentLogins = 16

// HasRecentLogin reports whether the ProxyUser recorded the login with
// digest within window before now: a replay, whichever replica sees it.
func HasRecentLogin(pu *rolesyncv1.ProxyUser, digest string, now time.Time, window time.Duration) bool {
	for _, r := range pu.Spec.RecentLogins {
		if r.Digest == digest && now.Sub(r.ReceivedAt.Time) < window {
			return true
		}
	}
	return false
}

// RecordLogin returns recent with the login (digest, received at now)
// appended, after dropping records older than window, keeping the newest
// MaxRecentLogins. A record dropped for the cap is a login more than 15
// logins old: a replay of it is older than lastLoginTime, so stale, and
// changes nothing.
func RecordLogin(recent []rolesyncv1.LoginRecord, digest string, now time.Time, window time.Duration) []rolesyncv1.LoginRecord {
	out := make([]rolesyncv1.LoginRecord, 0, min(len(recent)+1, MaxRecentLogins))
	for _, r := range recent {
		if now.Sub(r.ReceivedAt.Time) < window && r.Digest != digest {
			out = append(out, r)
		}
	}
	out = append(out, rolesyncv1.LoginRecord{Digest: digest, ReceivedAt: metav1.NewMicroTime(now.UTC().Truncate(time.Microsecond))})
	if len(out) > MaxRecentLogins {
		out = out[len(out)-MaxRecentLogins:]
	}
	return out
}
