// Package idp runs a real OpenID provider on loopback for tests: oauth2-proxy's
// mockoidc (discovery, JWKS, the authorization-code flow, RS256 ID and access
// tokens), built from its Go module sources. Tokens are obtained the way a
// relying party obtains them (authorize, then the token endpoint), so the
// tests exercise the provider's own discovery document, key ids and claims.
package idp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// Provider is a running OpenID provider.
type Provider struct {
	m      *mockoidc.MockOIDC
	mu     sync.RWMutex // held (read) by every request; (write) by changes to m
	ln     net.Listener
	client *http.Client // a relying party's: trusts the provider's CA
	caPEM  []byte
}

// Start runs a provider on 127.0.0.1 over plain HTTP.
func Start() (*Provider, error) { return start(nil, nil) }

// StartTLS runs a provider on https://127.0.0.1 with a certificate of its
// own, signed by a new CA; CAPEM returns that CA.
func StartTLS() (*Provider, error) {
	caPEM, cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	p, err := start(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, roots)
	if p != nil {
		p.caPEM = caPEM
	}
	return p, err
}

// CAPEM is the CA of an HTTPS provider's certificate.
func (p *Provider) CAPEM() []byte { return p.caPEM }

// selfSigned makes a CA certificate valid for 127.0.0.1 and its key pair.
func selfSigned() ([]byte, tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func start(cfg *tls.Config, roots *x509.CertPool) (*Provider, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	m, err := mockoidc.NewServer(key)
	if err != nil {
		return nil, err
	}
	p := &Provider{m: m, client: &http.Client{Timeout: 10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	// Every request holds the read lock, so a change under the write lock
	// (a key rotation, a clock shift) happens before or after it, never
	// during.
	if err := m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.mu.RLock()
			defer p.mu.RUnlock()
			next.ServeHTTP(w, r)
		})
	}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	p.ln = ln
	if err := m.Start(ln, cfg); err != nil {
		return nil, err
	}
	return p, nil
}

// Stop shuts the provider down (its tokens stay valid; its keys can no
// longer be fetched).
func (p *Provider) Stop() error { return p.m.Shutdown() }

// Issuer is the provider's issuer URL (iss of its tokens).
func (p *Provider) Issuer() string { return p.m.Issuer() }

// ClientID is the audience of its tokens.
func (p *Provider) ClientID() string { return p.m.ClientID }

// KeyID is the kid of the current signing key.
func (p *Provider) KeyID() string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	kid, _ := p.m.Keypair.KeyID()
	return kid
}

// PublicKeyPEM is the current signing key's public half, PEM-encoded: what
// an alg-switch forger uses as an HMAC secret.
func (p *Provider) PublicKeyPEM() []byte {
	p.mu.RLock()
	defer p.mu.RUnlock()
	der, err := x509.MarshalPKIXPublicKey(p.m.Keypair.PublicKey)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Rotate replaces the provider's signing key: tokens are signed with the
// new key, and its JWKS lists only the new key.
func (p *Provider) Rotate() error {
	kp, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m.Keypair = kp
	return nil
}

// Shift moves the provider's clock by d (tokens issued in the past or the
// future).
func (p *Provider) Shift(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m.FastForward(d)
}

// User is one login: the subject and the claims the provider puts into
// its ID token (Extra) besides the registered ones (nested objects allowed).
type User struct {
	Subject string
	Extra   map[string]any
}

// ID implements mockoidc.User.
func (u User) ID() string { return u.Subject }

// Userinfo implements mockoidc.User.
func (u User) Userinfo([]string) ([]byte, error) {
	c := map[string]any{"sub": u.Subject}
	for k, v := range u.Extra {
		c[k] = v
	}
	return json.Marshal(c)
}

// Claims implements mockoidc.User: the registered claims plus u.Extra.
func (u User) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	c := jwt.MapClaims{}
	data, err := json.Marshal(base)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	for k, v := range u.Extra {
		c[k] = v
	}
	return c, nil
}

// Tokens are what the token endpoint answered.
type Tokens struct {
	IDToken     string `json:"id_token"`
	AccessToken string `json:"access_token"`
}

// Login runs the authorization-code flow for u, as a relying party would.
func (p *Provider) Login(u User) (Tokens, error) {
	p.m.QueueUser(u)
	client := p.client
	const redirect = "http://127.0.0.1/callback"
	q := url.Values{"client_id": {p.m.ClientID}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid email profile groups"}, "state": {"state-1"}, "nonce": {"nonce-1"}}
	resp, err := client.Get(p.m.AuthorizationEndpoint() + "?" + q.Encode())
	if err != nil {
		return Tokens{}, err
	}
	_ = resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		return Tokens{}, fmt.Errorf("authorize: %s without a code (Location %q)", resp.Status, resp.Header.Get("Location"))
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirect},
		"client_id": {p.m.ClientID}, "client_secret": {p.m.ClientSecret}}
	resp, err = client.Post(p.m.TokenEndpoint(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		return Tokens{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return Tokens{}, fmt.Errorf("token endpoint: %s: %s", resp.Status, body)
	}
	var t Tokens
	if err := json.Unmarshal(body, &t); err != nil || t.IDToken == "" {
		return Tokens{}, errors.New("token endpoint: no id_token in the answer")
	}
	return t, nil
}
