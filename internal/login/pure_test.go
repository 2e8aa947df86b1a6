package login

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/utils/keymutex"

	"github.com/rolesync/rolesync/internal/login/authn"
)

func TestRateLimitPerClient(t *testing.T) {
	s := &Server{limiter: authn.NewClientLimiter(1, 2), now: time.Now, replay: authn.NewReplayCache(), inFlight: make(chan struct{}, MaxInFlight), locks: keymutex.NewHashed(identityLocks)}
	before := testutil.ToFloat64(eventsTotal.WithLabelValues(FormUnknown, ReasonRateLimited))
	codes := []int{}
	for range 4 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/v1/namespaces/x/login-events", nil)
		req.RemoteAddr = "10.0.0.1:5555"
		s.ServeHTTP(rec, req)
		codes = append(codes, rec.Code)
	}
	// The first two pass the limiter (and fail later: GET), then 429.
	if !reflect.DeepEqual(codes, []int{405, 405, 429, 429}) {
		t.Fatalf("codes %v", codes)
	}
	other := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/v1/namespaces/x/login-events", nil)
	req.RemoteAddr = "10.0.0.2:5555"
	s.ServeHTTP(other, req)
	if other.Code != 405 {
		t.Fatalf("another client was limited too: %d", other.Code)
	}
	if got := testutil.ToFloat64(eventsTotal.WithLabelValues(FormUnknown, ReasonRateLimited)) - before; got != 2 {
		t.Fatalf("rolesync_login_events_total{result=RateLimited} grew by %v, want 2", got)
	}
}
