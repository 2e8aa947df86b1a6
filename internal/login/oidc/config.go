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
	// Namespaces, when set, are the only namespaces whose logins this
	// provider's tokens may record.
	Namespaces []string `json:"namespaces,omitempty"`

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
	for j, ns := range is.Namespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) != 0 {
			return fmt.Errorf("namespaces[%d]: %q is not a namespace name", j, ns)
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

// allows reports whether the issuer may record logins in namespace.
func (is *Issuer) allows(namespace string) bool {
	return len(is.Namespaces) == 0 || slices.Contains(is.Namespaces, namespace)
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
