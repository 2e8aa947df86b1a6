package scim

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// The front door alone (a fake client: no resource is read): tokens fail
// closed when the file breaks and work again when it is fixed, and a
// client past its rate gets 429 before anything else.
func newFront(t *testing.T, tokenLines string, rate float64, burst int) (*Server, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte(tokenLines), 0o600); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ai"}}).Build()
	s, err := NewServer(Options{Insecure: true, TokenFile: file, RateLimit: rate, RateBurst: burst}, c, c, nil, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return s, file
}

func get(s *Server, token, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = "10.0.0.1:1234"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

func TestTokenFileFailsClosed(t *testing.T) {
	const tok = "ai-token-0123456789abcdef0123456789abcdef"
	s, file := newFront(t, "# rotation: old then new\nai: "+tok+"\nai: second-token-0123456789abcdef01234567\n", 0, 0)
	if w := get(s, tok, "/scim/v2/ai/ServiceProviderConfig"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "oauthbearertoken") {
		t.Fatalf("a good token: %d %s", w.Code, w.Body)
	}
	if w := get(s, "second-token-0123456789abcdef01234567", "/scim/v2/ai/ResourceTypes"); w.Code != http.StatusOK {
		t.Fatalf("the second token of the namespace: %d %s", w.Code, w.Body)
	}
	for _, broken := range []string{"", "ai: short\n", "not a line\n"} {
		if err := os.WriteFile(file+".tmp", []byte(broken), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".tmp", file); err != nil {
			t.Fatal(err)
		}
		var w *httptest.ResponseRecorder
		for range 40 { // re-read within a second
			if w = get(s, tok, "/scim/v2/ai/ServiceProviderConfig"); w.Code == http.StatusServiceUnavailable {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "urn:ietf:params:scim:api:messages:2.0:Error") {
			t.Fatalf("token file %q: %d %s, want 503 in the SCIM error schema", broken, w.Code, w.Body)
		}
	}
	if err := os.WriteFile(file, []byte("ai: "+tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var w *httptest.ResponseRecorder
	for range 40 {
		if w = get(s, tok, "/scim/v2/ai/ServiceProviderConfig"); w.Code == http.StatusOK {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("after the fix: %d %s", w.Code, w.Body)
}

func TestSCIMIsRateLimited(t *testing.T) {
	const tok = "ai-token-0123456789abcdef0123456789abcdef"
	s, _ := newFront(t, "ai: "+tok+"\n", 1, 3)
	codes := map[int]int{}
	for range 10 {
		codes[get(s, tok, "/scim/v2/ai/ServiceProviderConfig").Code]++
	}
	if codes[http.StatusOK] != 3 || codes[http.StatusTooManyRequests] != 7 {
		t.Fatalf("10 requests at burst 3: %v", codes)
	}
	// Unauthenticated requests spend the same budget (nothing is free).
	if w := get(s, "", "/scim/v2/ai/Users"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("an unauthenticated request past the rate: %d", w.Code)
	}
}
