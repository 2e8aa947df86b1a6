package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"

	"github.com/rolesync/rolesync/internal/login/authn"
)

// scripted is an OpenID provider whose discovery document and key set a
// test writes: the shapes real providers publish (several keys, EC keys,
// keys on another host, a provider that hangs), which mockoidc cannot.
type scripted struct {
	srv      *httptest.Server
	mu       sync.Mutex
	jwksURI  string // "" = the provider's own /keys
	keys     []map[string]any
	hold     chan struct{} // non-nil: every request waits until it is closed
	keyReads atomic.Int64  // requests for the key set
}

func startScripted(t *testing.T) *scripted {
	t.Helper()
	s := &scripted{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		hold, keys, jwksURI := s.hold, s.keys, s.jwksURI
		s.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			if jwksURI == "" {
				jwksURI = s.srv.URL + "/keys"
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": s.srv.URL, "jwks_uri": jwksURI})
		case "/keys":
			s.keyReads.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(func() {
		s.release()
		s.srv.Close()
	})
	return s
}

func (s *scripted) issuer() string { return s.srv.URL }

// holdRequests makes every request hang until release.
func (s *scripted) holdRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = make(chan struct{})
}

func (s *scripted) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold != nil {
		close(s.hold)
		s.hold = nil
	}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	raw, err := k.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	x, y := raw[1:33], raw[33:]
	return map[string]any{"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256", "x": b64u(x), "y": b64u(y)}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func baseClaims(iss string, aud any) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": iss, "aud": aud, "sub": "u1", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
}

// verifierFor starts a Verifier on config and waits until every listed
// issuer with keys can verify (ready(tok) tokens stop answering ErrNoKeys).
func verifierFor(t *testing.T, config string) *Verifier {
	t.Helper()
	v, err := NewVerifier(Options{ConfigFile: writeConfig(t, config), Log: logr.Discard(), UnknownKIDPeriod: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v.Start(ctx)
	return v
}

// verifyReady verifies tok, waiting while its issuer's keys have not arrived.
func verifyReady(t *testing.T, v *Verifier, tok, ns string) (*authn.Event, error) {
	t.Helper()
	var ev *authn.Event
	var err error
	for range 200 {
		if ev, err = v.Verify(context.Background(), tok, ns); !errors.Is(err, authn.ErrNoKeys) {
			return ev, err
		}
		time.Sleep(25 * time.Millisecond)
	}
	return ev, err
}

func issuerLine(iss, aud, extra string) string {
	return "- url: " + iss + "\n  audiences: [" + aud + "]\n  namespaces: [ns]\n" + extra
}

// TestTokenIsCheckedAgainstItsOwnIssuerOnly: the provider is chosen by the
// token's iss before any key work. A provider listed first that hangs is
// never asked for keys for another provider's token; two issuers that
// share one signing key (Entra's common keys) each verify their own
// tokens; a token of an unlisted issuer is refused without key work.
func TestTokenIsCheckedAgainstItsOwnIssuerOnly(t *testing.T) {
	shared, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	slow, a, b := startScripted(t), startScripted(t), startScripted(t)
	slow.keys = []map[string]any{rsaJWK("slow-key", &shared.PublicKey)}
	a.keys = []map[string]any{rsaJWK("common", &shared.PublicKey)}
	b.keys = []map[string]any{rsaJWK("common", &shared.PublicKey)}
	v := verifierFor(t, "issuers:\n"+issuerLine(slow.issuer(), "app", "")+issuerLine(a.issuer(), "app", "")+issuerLine(b.issuer(), "app", ""))
	if _, err := verifyReady(t, v, sign(t, jwt.SigningMethodRS256, shared, "slow-key", baseClaims(slow.issuer(), "app")), "ns"); err != nil {
		t.Fatalf("the first provider's own token: %v", err)
	}
	slow.holdRequests() // from now on it answers nothing
	before := slow.keyReads.Load()
	for _, p := range []*scripted{a, b} {
		// A kid the first provider does not know: before, it re-fetched that
		// provider's keys (10 s on a hung provider) before trying the next.
		ev, err := verifyReady(t, v, sign(t, jwt.SigningMethodRS256, shared, "common", baseClaims(p.issuer(), "app")), "ns")
		if err != nil || ev.Issuer != p.issuer() {
			t.Fatalf("a token of %s signed with the shared key: %+v, %v", p.issuer(), ev, err)
		}
	}
	slow.release()
	if n := slow.keyReads.Load() - before; n != 0 {
		t.Fatalf("other providers' tokens fetched the first provider's keys %d times", n)
	}
	_, err = v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, shared, "common", baseClaims("https://stranger.example.com", "app")), "ns")
	if !errors.Is(err, authn.ErrBadToken) || !strings.Contains(err.Error(), "not a trusted provider") {
		t.Fatalf("a token of an unlisted issuer: %v", err)
	}
}

// TestTokenWithoutKIDIsNotTriedAgainstEveryKey: a token that names no key
// is checked against at most MaxKeysWithoutKID keys of its issuer.
func TestTokenWithoutKIDIsNotTriedAgainstEveryKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := startScripted(t)
	for i := range 50 {
		p.keys = append(p.keys, rsaJWK(fmt.Sprintf("k%d", i), &key.PublicKey))
	}
	v := verifierFor(t, "issuers:\n"+issuerLine(p.issuer(), "app", ""))
	if _, err := verifyReady(t, v, sign(t, jwt.SigningMethodRS256, key, "k49", baseClaims(p.issuer(), "app")), "ns"); err != nil {
		t.Fatalf("a token naming its key: %v", err)
	}
	_, err = v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, key, "", baseClaims(p.issuer(), "app")), "ns")
	if !errors.Is(err, authn.ErrBadToken) || !strings.Contains(err.Error(), "names no key") {
		t.Fatalf("a token without kid against 50 keys: %v", err)
	}
}

// TestReplayIDIsWhatWasSigned: without a jti, the replay id is the digest
// of the signed bytes: an ECDSA signature and its negation (both verify)
// are one token, and so are two spellings of one signature, the second of
// which is refused as not canonical.
func TestReplayIDIsWhatWasSigned(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := startScripted(t)
	p.keys = []map[string]any{ecJWK("ec", &key.PublicKey)}
	v := verifierFor(t, "issuers:\n"+issuerLine(p.issuer(), "app", ""))
	tok := sign(t, jwt.SigningMethodES256, key, "ec", baseClaims(p.issuer(), "app"))
	ev, err := verifyReady(t, v, tok, "ns")
	if err != nil || !strings.HasPrefix(ev.ID, "jws:") {
		t.Fatalf("a token without jti: %+v, %v", ev, err)
	}
	// s -> n-s: another valid signature over the same bytes.
	dot := strings.LastIndexByte(tok, '.')
	sig, _ := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	negated := tok[:dot+1] + b64u(append(append([]byte(nil), sig[:32]...), s.FillBytes(make([]byte, 32))...))
	ev2, err := v.Verify(context.Background(), negated, "ns")
	if err != nil {
		t.Fatalf("the negated signature does not verify (the test lost its point): %v", err)
	}
	if ev2.ID != ev.ID {
		t.Fatalf("two signatures over the same bytes have replay ids %s and %s", ev.ID, ev2.ID)
	}
	// The same signature bytes spelled with a different last character
	// (its unused low bits set) or with a line break.
	last := tok[len(tok)-1]
	idx := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last)
	respelled := tok[:len(tok)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[idx^1])
	if lenient, _ := base64.RawURLEncoding.DecodeString(respelled[dot+1:]); string(lenient) != string(sig) {
		t.Fatal("the respelled signature decodes to other bytes (the test lost its point)")
	}
	for name, bad := range map[string]string{"unused bits set": respelled, "line break": tok[:dot+5] + "\n" + tok[dot+5:]} {
		if _, err := v.Verify(context.Background(), bad, "ns"); !errors.Is(err, authn.ErrBadToken) {
			t.Errorf("%s: %v, want ErrBadToken", name, err)
		}
	}
	// With a jti, the id is the issuer and jti, whatever the signature.
	c := baseClaims(p.issuer(), "app")
	c["jti"] = "j-1"
	ev3, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodES256, key, "ec", c), "ns")
	if err != nil || ev3.ID != replayID(p.issuer(), "j-1", "") {
		t.Fatalf("a token with jti: %+v, %v", ev3, err)
	}
}

// TestAuthorizedPartyAndKeysHost: OpenID Connect Core 3.1.3.7's azp rule
// for tokens with several audiences, and a jwks_uri on the issuer's host
// unless the configuration lists another.
func TestAuthorizedPartyAndKeysHost(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := startScripted(t)
	p.keys = []map[string]any{rsaJWK("k", &key.PublicKey)}
	v := verifierFor(t, "issuers:\n"+issuerLine(p.issuer(), "app", ""))
	withAZP := func(aud any, azp string) string {
		c := baseClaims(p.issuer(), aud)
		if azp != "" {
			c["azp"] = azp
		}
		return sign(t, jwt.SigningMethodRS256, key, "k", c)
	}
	for _, tc := range []struct {
		name, tok, says string
	}{
		{"one audience, no azp", withAZP("app", ""), ""},
		{"one audience, another client's azp (an access token)", withAZP("app", "cli"), ""},
		{"several audiences, azp the client", withAZP([]string{"app", "api"}, "app"), ""},
		{"several audiences, no azp", withAZP([]string{"app", "api"}, ""), "no azp"},
		{"several audiences, azp another client", withAZP([]string{"app", "api"}, "evil"), "wrong azp"},
	} {
		_, err := verifyReady(t, v, tc.tok, "ns")
		if (tc.says == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.says)
		}
	}

	// Keys on another host (localhost is not the issuer's 127.0.0.1).
	elsewhere := strings.Replace(p.issuer(), "127.0.0.1", "localhost", 1) + "/keys"
	p.mu.Lock()
	p.jwksURI = elsewhere
	p.mu.Unlock()
	host := strings.TrimPrefix(strings.TrimSuffix(elsewhere, "/keys"), "http://")
	refused := verifierFor(t, "issuers:\n"+issuerLine(p.issuer(), "app", ""))
	for range 20 { // discovery keeps failing: no keys, ever
		if _, err := refused.Verify(context.Background(), withAZP("app", ""), "ns"); !errors.Is(err, authn.ErrNoKeys) {
			t.Fatalf("keys on another host, not listed: %v, want ErrNoKeys", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	listed := verifierFor(t, "issuers:\n"+issuerLine(p.issuer(), "app", "  jwksHosts: ["+host+"]\n"))
	if _, err := verifyReady(t, listed, withAZP("app", ""), "ns"); err != nil {
		t.Fatalf("keys on a listed host: %v", err)
	}
}

// TestUnverifiedEmailBindsNothing: a token's email is the binding email
// only when the provider vouches for it (email_verified true, or
// trustEmail); otherwise it stays a claim.
func TestUnverifiedEmailBindsNothing(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p, trusting := startScripted(t), startScripted(t)
	p.keys = []map[string]any{rsaJWK("k", &key.PublicKey)}
	trusting.keys = p.keys
	v := verifierFor(t, "issuers:\n"+issuerLine(p.issuer(), "app", "")+issuerLine(trusting.issuer(), "app", "  trustEmail: true\n"))
	for _, tc := range []struct {
		name     string
		iss      string
		verified any
		want     string
	}{
		{"no email_verified", p.issuer(), nil, ""},
		{"email_verified false", p.issuer(), false, ""},
		{"email_verified \"false\"", p.issuer(), "false", ""},
		{"email_verified true", p.issuer(), true, "kim@example.com"},
		{"email_verified \"true\" (Cognito)", p.issuer(), "true", "kim@example.com"},
		{"trustEmail", trusting.issuer(), nil, "kim@example.com"},
	} {
		c := baseClaims(tc.iss, "app")
		c["email"] = "kim@example.com"
		if tc.verified != nil {
			c["email_verified"] = tc.verified
		}
		ev, err := verifyReady(t, v, sign(t, jwt.SigningMethodRS256, key, "k", c), "ns")
		if err != nil || ev.Email != tc.want || ev.Claims["email"] != "kim@example.com" {
			t.Errorf("%s: %+v, %v; want binding email %q and the email claim kept", tc.name, ev, err, tc.want)
		}
	}
}
