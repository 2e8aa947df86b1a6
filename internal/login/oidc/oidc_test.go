package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"

	"github.com/rolesync/rolesync/internal/login/authn"
	"github.com/rolesync/rolesync/internal/testing/idp"
)

func TestParseConfigNamesTheBadField(t *testing.T) {
	for _, tc := range []struct{ doc, says string }{
		{``, "at least one issuer"},
		{`issuers: []`, "at least one issuer"},
		{`issuers: [{url: "http://keycloak.example.com/realms/ai", audiences: [a]}]`, "issuers[0]: url: \"http://keycloak.example.com/realms/ai\": only https"},
		{`issuers: [{url: "https://k.example.com/", audiences: [a]}]`, "ends with /"},
		{`issuers: [{url: "https://k.example.com"}]`, "issuers[0]: audiences"},
		{`issuers: [{url: "https://k.example.com", audiences: [a], namespaces: [Not_A_Namespace]}]`, "issuers[0]: namespaces[0]"},
		{`issuers: [{url: "https://k.example.com", audiences: [a]}]`, "issuers[0]: namespaces: required"},
		{`issuers: [{url: "https://k.example.com", audiences: [a], namespaces: []}]`, "issuers[0]: namespaces: required"},
		{`issuers: [{url: "https://k.example.com", audiences: [a], namespaces: ["*", ai]}]`, "issuers[0]: namespaces[0]"},
		{`issuers: [{url: "https://k.example.com", audiences: [a], namespaces: [ai], jwksHosts: ["a/b"]}]`, "issuers[0]: jwksHosts[0]"},
		{`issuers: [{url: "https://k.example.com", audiences: [a], namespaces: [ai], userIDClaim: "a..b"}]`, "issuers[0]: userIDClaim"},
		{`issuers: [{url: "https://k.example.com", audiences: [a], namespaces: [ai], certificateAuthority: /does/not/exist}]`, "issuers[0]: certificateAuthority"},
		{`issuers: [{url: "https://k.example.com", audiences: [a], audience: b}]`, "unknown field \"audience\""},
		{`issuers: [{url: "https://k.example.com", audiences: [a], namespaces: [ai]}, {url: "https://k.example.com", audiences: [b], namespaces: [ai]}]`, "issuers[1].url: https://k.example.com is listed twice"},
	} {
		_, err := ParseConfig([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: error %v, want one saying %q", tc.doc, err, tc.says)
		}
	}
	c, err := ParseConfig([]byte("issuers:\n- url: http://127.0.0.1:5556/dex\n  audiences: [litellm]\n  namespaces: [\"*\"]\n" +
		"- url: https://k.example.com\n  audiences: [litellm]\n  namespaces: [ai, ml]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if is := c.Issuers[0]; is.UserIDClaim != "sub" || is.EmailClaim != "email" || !is.allows("any") {
		t.Fatalf("defaults, all namespaces: %+v", is)
	}
	if is := c.Issuers[1]; !is.allows("ai") || !is.allows("ml") || is.allows("other") {
		t.Fatalf("listed namespaces: %+v", is)
	}
}

func writeConfig(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "oidc.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A provider that cannot be reached has no keys: its tokens get 503
// (retry), never a verdict.
func TestUnreachableProviderMeansNoKeys(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	issuer := "http://" + addr + "/oidc"
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": issuer, "aud": "x", "sub": "u1",
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(Options{ConfigFile: writeConfig(t, "issuers:\n- url: "+issuer+"\n  audiences: [x]\n  namespaces: [ns]\n"), Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v.Start(ctx)
	if _, err := v.Verify(ctx, tok, "ns"); !errors.Is(err, authn.ErrNoKeys) {
		t.Fatalf("Verify of a token of the unreachable provider: %v, want ErrNoKeys (503: retry)", err)
	}
}

// A configuration that stops parsing refuses every token (fail closed),
// not the last good issuers.
func TestBrokenConfigFailsClosed(t *testing.T) {
	p, err := idp.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Stop() }()
	path := writeConfig(t, "issuers:\n- url: "+p.Issuer()+"\n  audiences: ["+p.ClientID()+"]\n  namespaces: [ns]\n")
	v, err := NewVerifier(Options{ConfigFile: path, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v.Start(ctx)
	verify := func() (*authn.Event, error) {
		tok, err := p.Login(idp.User{Subject: "u1", Extra: map[string]any{"email": "u1@example.com", "email_verified": true}})
		if err != nil {
			t.Fatal(err)
		}
		return v.Verify(ctx, tok.IDToken, "ns")
	}
	var ev *authn.Event
	for range 100 { // discovery runs in the background
		if ev, err = verify(); !errors.Is(err, authn.ErrNoKeys) {
			break
		}
		waitABit()
	}
	if err != nil || ev.UserID != "u1" || ev.Issuer != p.Issuer() || ev.Email != "u1@example.com" || !strings.HasPrefix(ev.ID, "jti:") {
		t.Fatalf("Verify: %+v, %v", ev, err)
	}
	if err := os.WriteFile(path, []byte("issuers: [{url: nope}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 100 { // re-read within a second
		if _, err = verify(); errors.Is(err, authn.ErrNoKeys) {
			return
		}
		waitABit()
	}
	t.Fatalf("a broken configuration still verified tokens: %v", err)
}

func waitABit() { time.Sleep(50 * time.Millisecond) }

// An HTTPS provider with a private CA: trusted through certificateAuthority,
// unreachable (no keys, 503) without it.
func TestProviderCertificateAuthority(t *testing.T) {
	p, err := idp.StartTLS()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Stop() }()
	if !strings.HasPrefix(p.Issuer(), "https://") {
		t.Fatalf("issuer %s is not https", p.Issuer())
	}
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, p.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	verify := func(caLine string) error {
		v, err := NewVerifier(Options{ConfigFile: writeConfig(t, "issuers:\n- url: "+p.Issuer()+"\n  audiences: ["+p.ClientID()+"]\n  namespaces: [ns]\n"+caLine), Log: logr.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		v.Start(ctx)
		tok, err := p.Login(idp.User{Subject: "u1", Extra: map[string]any{"email": "u1@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		for range 100 { // discovery runs in the background
			if _, err = v.Verify(ctx, tok.IDToken, "ns"); !errors.Is(err, authn.ErrNoKeys) {
				return err
			}
			waitABit()
		}
		return err
	}
	if err := verify("  certificateAuthority: " + ca + "\n"); err != nil {
		t.Fatalf("with the provider's CA: %v", err)
	}
	if err := verify(""); !errors.Is(err, authn.ErrNoKeys) {
		t.Fatalf("without the provider's CA (system roots): %v, want ErrNoKeys (TLS refused)", err)
	}
}
