// Package oidc verifies tokens issued by identity providers (ID tokens and
// access tokens) against the providers' own keys, for the login server's
// login-tokens endpoint. Trusted providers come from a YAML file
// (--login-oidc-config) re-read when it changes; each provider's keys are
// found by OIDC discovery and fetched, cached and refreshed by
// github.com/MicahParks/keyfunc/v3 (on golang-jwt/v5). Every key stays
// pinned to its own algorithm (authn.NewVerificationKey), the signature is
// verified before the payload is decoded, and the token becomes an
// authn.Event for the same evaluation as the other login forms.
package oidc

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/rolesync/rolesync/internal/claimpath"
	"github.com/rolesync/rolesync/internal/login/authn"
)

// Config is the --login-oidc-config file.
type Config struct {
	Issuers []Issuer `json:"issuers"`
}

// Issuer is one trusted identity provider.
type Issuer struct {
	// URL is the issuer: the token's iss must equal it, and discovery reads
	// URL + "/.well-known/openid-configuration".
	URL string `json:"url"`
	// Audiences: the token's aud must contain one of them.
	Audiences []string `json:"audiences"`
	// UserIDClaim is the claim (a claim path) that holds the LiteLLM user
	// id; default sub.
	UserIDClaim string `json:"userIDClaim,omitempty"`
	// EmailClaim is the claim that holds the email; default email.
	EmailClaim string `json:"emailClaim,omitempty"`
	// CertificateAuthority is a PEM file of the CAs that sign the
	// provider's TLS certificate (else the system's roots).
	CertificateAuthority string `json:"certificateAuthority,omitempty"`
	// Namespaces are the namespaces whose logins this provider's tokens may
	// record: required. ["*"] (alone) is the one explicit opt-in to every
	// namespace; a token is then one login in any namespace it is posted to
	// (each namespace still accepts it once).
	Namespaces []string `json:"namespaces"`
	// JWKSHosts are hosts (host or host:port) besides the issuer's own that
	// its discovery document's jwks_uri may name, for a provider that
	// serves its keys elsewhere (Google: www.googleapis.com). Unset: the
	// issuer's own host only.
	JWKSHosts []string `json:"jwksHosts,omitempty"`
	// TrustEmail: the provider vouches for every email it puts in a token,
	// for a provider that verifies emails but sends no email_verified
	// claim. Otherwise a token's email binds the user to a LiteLLM row only
	// with email_verified: true.
	TrustEmail bool `json:"trustEmail,omitempty"`

	userID, email claimpath.Path
	roots         *x509.CertPool
	caPEM         string
}

// Bounds on the configuration.
const (
	MaxIssuers   = 64
	MaxAudiences = 32
)

// ParseConfig reads and checks the configuration, and reads each issuer's
// CA file. Unknown fields are errors (a typo must not silently widen or
// narrow trust).
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("not a valid OIDC configuration: %w", err)
	}
	if len(c.Issuers) == 0 {
		return nil, errors.New("issuers: at least one issuer is required")
	}
	if len(c.Issuers) > MaxIssuers {
		return nil, fmt.Errorf("issuers: at most %d", MaxIssuers)
	}
	seen := map[string]bool{}
	for i := range c.Issuers {
		is := &c.Issuers[i]
		if err := is.complete(); err != nil {
			return nil, fmt.Errorf("issuers[%d]: %w", i, err)
		}
		if seen[is.URL] {
			return nil, fmt.Errorf("issuers[%d].url: %s is listed twice", i, is.URL)
		}
		seen[is.URL] = true
	}
	return &c, nil
}

func (is *Issuer) complete() error {
	if err := checkURL(is.URL); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if len(is.Audiences) == 0 || len(is.Audiences) > MaxAudiences {
		return fmt.Errorf("audiences: 1 to %d audiences are required", MaxAudiences)
	}
	for j, a := range is.Audiences {
		if a == "" || len(a) > 1024 {
			return fmt.Errorf("audiences[%d]: must be 1 to 1024 characters", j)
		}
	}
	var err error
	if is.UserIDClaim == "" {
		is.UserIDClaim = "sub"
	}
	if is.userID, err = claimpath.Parse(is.UserIDClaim); err != nil {
		return fmt.Errorf("userIDClaim: %w", err)
	}
	if is.EmailClaim == "" {
		is.EmailClaim = "email"
	}
	if is.email, err = claimpath.Parse(is.EmailClaim); err != nil {
		return fmt.Errorf("emailClaim: %w", err)
	}
	if len(is.Namespaces) == 0 {
		return fmt.Errorf("namespaces: required: list the namespaces this provider's tokens may log into, or [%q] for all", AllNamespaces)
	}
	for j, ns := range is.Namespaces {
		if ns == AllNamespaces && len(is.Namespaces) == 1 {
			continue
		}
		if msgs := validation.IsDNS1123Label(ns); len(msgs) != 0 {
			return fmt.Errorf("namespaces[%d]: %q is not a namespace name (%q stands alone for all namespaces)", j, ns, AllNamespaces)
		}
	}
	for j, h := range is.JWKSHosts {
		if u, err := url.Parse("https://" + h); err != nil || u.Host != h || h == "" {
			return fmt.Errorf("jwksHosts[%d]: %q is not a host or host:port", j, h)
		}
	}
	if is.CertificateAuthority != "" {
		pem, err := os.ReadFile(is.CertificateAuthority)
		if err != nil {
			return fmt.Errorf("certificateAuthority: %w", err)
		}
		is.roots = x509.NewCertPool()
		if !is.roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("certificateAuthority: %s holds no PEM certificate", is.CertificateAuthority)
		}
		is.caPEM = string(pem)
	}
	return nil
}

// AllNamespaces is the one entry of an issuer's namespaces that trusts it in
// every namespace.
const AllNamespaces = "*"

// allows reports whether the issuer may record logins in namespace.
func (is *Issuer) allows(namespace string) bool {
	return slices.Equal(is.Namespaces, []string{AllNamespaces}) || slices.Contains(is.Namespaces, namespace)
}

// checkJWKSURI requires the discovery document's jwks_uri to be https (or
// http on a loopback host) on the issuer's own host or a listed jwksHost:
// a document that points elsewhere is not trusted to name the keys.
func (is *Issuer) checkJWKSURI(s string) error {
	if err := checkURL(s); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	iu, _ := url.Parse(is.URL)
	if u.Host == iu.Host || slices.Contains(is.JWKSHosts, u.Host) || slices.Contains(is.JWKSHosts, u.Hostname()) {
		return nil
	}
	return fmt.Errorf("%q is not on the issuer's host %s (list its host in jwksHosts to trust it)", s, iu.Host)
}

// checkAuthorizedParty applies OpenID Connect Core 3.1.3.7: a token with
// several audiences was issued to the party its azp names, which must be
// one of the configured audiences (the client); without azp it is refused.
// A single-audience token's azp is not checked: an access token's azp is
// the client that asked for it, its aud the API (the configured audience).
func (is *Issuer) checkAuthorizedParty(payload []byte, aud []string) error {
	if len(aud) <= 1 {
		return nil
	}
	var top struct {
		Azp *string `json:"azp"`
	}
	if err := json.Unmarshal(payload, &top); err != nil {
		return fmt.Errorf("%w: azp must be a string", authn.ErrBadToken)
	}
	switch {
	case top.Azp == nil:
		return fmt.Errorf("%w: the token has several audiences and no azp (authorized party)", authn.ErrBadToken)
	case !slices.Contains(is.Audiences, *top.Azp):
		return fmt.Errorf("%w: wrong azp (the token has several audiences and its authorized party is not a configured audience)", authn.ErrBadToken)
	}
	return nil
}

// emailVerified reports whether the provider vouches for the token's
// email: trustEmail, or an email_verified claim that is true (the boolean,
// or the string "true" some providers send).
func (is *Issuer) emailVerified(claims map[string]any) bool {
	if is.TrustEmail {
		return true
	}
	switch v := claims["email_verified"].(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}

// sameConnection reports whether two configurations of an issuer reach
// its keys the same way (so its cached keys stay valid across a reload).
func (is *Issuer) sameConnection(o *Issuer) bool {
	return is.URL == o.URL && is.caPEM == o.caPEM
}

// checkURL requires https, except on a loopback host (a provider on the
// same machine, as in tests and local demos).
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not an absolute URL without query, fragment or user", s)
	}
	if strings.HasSuffix(s, "/") {
		return fmt.Errorf("%q ends with /: the issuer must be written exactly as in the tokens' iss", s)
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && loopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%q: only https is allowed (http only for a loopback host)", s)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
