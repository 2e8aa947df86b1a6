package authn

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrBadToken is any JWT that does not verify or lacks a required claim.
var ErrBadToken = errors.New("the token does not verify")

// ErrNoKeys means the keys file gives no keys (missing, empty, unparseable).
var ErrNoKeys = errors.New("no verification keys")

// MaxLeeway bounds the clock leeway on exp, nbf and iat.
const MaxLeeway = 60 * time.Second

// VerificationKey is one key with the algorithms it may verify: pinned per
// key, so an HS256 token can never be checked against an RSA public key.
type VerificationKey struct {
	kid  string
	key  any
	algs []string
}

// ParseKeys reads PEM public keys (RSA, ECDSA, Ed25519) or a JWKS document.
// HMAC keys exist only as JWKS "oct" keys: configured as one on purpose.
//
// This file form stays on this small parser rather than keyfunc/jwkset
// (which the login-tokens form uses for providers' keys over HTTP): keyfunc
// reads JWK Sets only, so PEM files would still need this code, and its
// keyfunc lets an RSA key without "alg" verify any RSA algorithm golang-jwt
// knows, without the 2048-bit and exponent checks done here. Both forms
// end in the same VerificationKey and algorithm pinning (keyFor).
func ParseKeys(data []byte) ([]VerificationKey, error) {
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "{") {
		return parseJWKS([]byte(trimmed))
	}
	var keys []VerificationKey
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var pub any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		default:
			return nil, fmt.Errorf("PEM block %q: only public keys are accepted", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %q: %w", block.Type, err)
		}
		k, err := keyFor("", pub, "")
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key and not a JWKS document")
	}
	return keys, nil
}

// keyFor pins the algorithms of a key: alg if given (and fitting the key),
// else every algorithm of its kind.
func keyFor(kid string, key any, alg string) (VerificationKey, error) {
	var algs []string
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return VerificationKey{}, errors.New("RSA keys must have at least 2048 bits")
		}
		// A real RSA modulus is odd and its public exponent odd and >= 3: any
		// other value is a broken or planted key.
		if k.N.Bit(0) == 0 || k.E < 3 || k.E%2 == 0 {
			return VerificationKey{}, errors.New("not a valid RSA public key (even modulus, or an exponent below 3 or even)")
		}
		algs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			algs = []string{"ES256"}
		case elliptic.P384():
			algs = []string{"ES384"}
		case elliptic.P521():
			algs = []string{"ES512"}
		default:
			return VerificationKey{}, errors.New("unsupported ECDSA curve")
		}
	case ed25519.PublicKey:
		algs = []string{"EdDSA"}
	case []byte:
		if len(k) < 32 {
			return VerificationKey{}, errors.New("HMAC keys must be at least 32 bytes")
		}
		algs = []string{"HS256", "HS384", "HS512"}
	default:
		return VerificationKey{}, fmt.Errorf("unsupported key type %T", key)
	}
	if alg != "" {
		if !slices.Contains(algs, alg) {
			return VerificationKey{}, fmt.Errorf("key %q: alg %s does not fit its key type", kid, alg)
		}
		algs = []string{alg}
	}
	return VerificationKey{kid: kid, key: key, algs: algs}, nil
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	K   string `json:"k"`
}

func parseJWKS(data []byte) ([]VerificationKey, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	var keys []VerificationKey
	for i, j := range doc.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		pub, err := j.key()
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d (%q): %w", i, j.Kid, err)
		}
		k, err := keyFor(j.Kid, pub, j.Alg)
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d: %w", i, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS: no signing key")
	}
	return keys, nil
}

func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func (j jwk) key() (any, error) {
	switch j.Kty {
	case "RSA":
		n, err1 := b64(j.N)
		e, err2 := b64(j.E)
		if err := errors.Join(err1, err2); err != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA n or e")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case "EC":
		curves := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}
		c, ok := curves[j.Crv]
		if !ok {
			return nil, fmt.Errorf("unsupported curve %q", j.Crv)
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		if err := errors.Join(err1, err2); err != nil {
			return nil, errors.New("bad EC x or y")
		}
		size := (c.Params().BitSize + 7) / 8
		raw := append([]byte{4}, append(leftPad(x, size), leftPad(y, size)...)...)
		pub, err := ecdsa.ParseUncompressedPublicKey(c, raw)
		if err != nil {
			return nil, fmt.Errorf("EC point: %w", err)
		}
		return pub, nil
	case "OKP":
		x, err := b64(j.X)
		if j.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("only Ed25519 OKP keys are supported")
		}
		return ed25519.PublicKey(x), nil
	case "oct":
		k, err := b64(j.K)
		if err != nil {
			return nil, errors.New("bad oct k")
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported kty %q", j.Kty)
}

func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(make([]byte, n-len(b)), b...)
}

// tokenClaims is the JWT form of an event: the registered claims plus the
// event's fields (its id is the jti).
type tokenClaims struct {
	jwt.RegisteredClaims
	EventID   string         `json:"id,omitempty"`
	Time      string         `json:"time"`
	UserID    string         `json:"userID"`
	Email     string         `json:"email,omitempty"`
	IdPIssuer string         `json:"issuer"`
	Claims    map[string]any `json:"claims"`
	Namespace string         `json:"namespace,omitempty"`
}

// JWTVerifier verifies login events sent as signed JWTs.
type JWTVerifier struct {
	Keys     func() ([]VerificationKey, error)
	Issuer   string
	Audience string
	Leeway   time.Duration
	Now      func() time.Time
}

// Verify authenticates token, then bounds and validates the event it carries.
func (v *JWTVerifier) Verify(token string) (*Event, error) {
	keys, err := v.Keys()
	if err != nil || len(keys) == 0 {
		return nil, ErrNoKeys
	}
	now := v.Now()
	// Verify the signature before anything of the payload is decoded: an
	// unauthenticated token costs its header and signature, never its
	// (possibly huge, deeply nested) payload.
	payload, err := VerifyCompact(token, keys)
	if err != nil {
		return nil, err
	}
	if err := CheckBounds(payload); err != nil {
		return nil, err
	}
	if err := checkRegisteredClaims(payload); err != nil {
		return nil, err
	}
	var algs []string
	for _, k := range keys {
		algs = append(algs, k.algs...)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(algs), // never "none"
		jwt.WithIssuer(v.Issuer),
		jwt.WithAudience(v.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(min(v.Leeway, MaxLeeway)),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithJSONNumber(),     // claims keep their exact numbers
		jwt.WithStrictDecoding(), // one spelling per token (VerifyCompact checked it too)
	)
	var c tokenClaims
	_, err = parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		return keySet(keys, t.Method.Alg(), headerKid(t.Header))
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadToken, TokenErrorText(err))
	}
	if c.ID == "" {
		return nil, fmt.Errorf("%w: jti is required", ErrBadToken)
	}
	if c.IssuedAt == nil {
		return nil, fmt.Errorf("%w: iat is required", ErrBadToken)
	}
	if d := now.Sub(c.IssuedAt.Time); d > MaxSkew || d < -MaxSkew {
		return nil, ErrClockSkew
	}
	if c.EventID != "" && c.EventID != c.ID {
		return nil, &FieldError{"id", "differs from jti"}
	}
	w := wireEvent{ID: c.ID, Time: c.Time, UserID: c.UserID, Email: c.Email, Issuer: c.IdPIssuer, Namespace: c.Namespace}
	if c.Claims != nil {
		w.Claims, _ = json.Marshal(c.Claims)
	}
	ev, err := w.event()
	if err != nil {
		return nil, err
	}
	ev.SignedAt = c.IssuedAt.Time
	return ev, nil
}

// Bounds on the parts of a JWT read before its signature is verified.
const (
	maxJWTHeader    = 4096
	maxJWTSignature = 1024 // base64 of the largest signature (RSA 4096: 683 characters)
)

// segment decodes the parts of a compact JWS strictly: unpadded base64url
// with zero trailing bits. With encoding/base64's lenient decoder one
// signature has many spellings (the unused bits of its last character, and
// CR or LF anywhere, which even the strict decoder skips), so one token
// could pass as many.
var segment = base64.RawURLEncoding.Strict()

func decodeSegment(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line breaks in a token part")
	}
	return segment.DecodeString(s)
}

// Compact is a compact JWS split into its parts, its header decoded and
// checked (bounded, no "crit"); nothing of the payload is decoded yet.
type Compact struct {
	Header       map[string]any
	Alg, KID     string
	SigningInput string // header.payload as sent: the bytes the signature covers
	payload      string
	Signature    []byte
}

// SplitToken splits and checks a compact JWS (every part canonical
// base64url), without decoding its payload.
func SplitToken(token string) (*Compact, error) {
	hdr, h, p, sig, err := splitCompact(token)
	if err != nil {
		return nil, err
	}
	sb, err := decodeSegment(sig)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed token signature (not canonical base64url)", ErrBadToken)
	}
	alg, _ := hdr["alg"].(string)
	return &Compact{Header: hdr, Alg: alg, KID: headerKid(hdr), SigningInput: token[:len(h)+1+len(p)], payload: p, Signature: sb}, nil
}

// UnverifiedIssuer reads the iss claim of a token whose signature is not
// verified yet, only to choose whose keys to verify it with: the payload
// is scanned for that one string, no claim of it is kept.
func (c *Compact) UnverifiedIssuer() (string, error) {
	payload, err := decodeSegment(c.payload)
	if err != nil {
		return "", fmt.Errorf("%w: malformed token payload (not canonical base64url)", ErrBadToken)
	}
	var top struct {
		Iss *string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &top); err != nil {
		return "", fmt.Errorf("%w: the token payload is not a JSON object with a string iss", ErrBadToken)
	}
	if top.Iss == nil || *top.Iss == "" {
		return "", fmt.Errorf("%w: the token has no iss", ErrBadToken)
	}
	return *top.Iss, nil
}

// Verify checks the signature over the signing input with keys (those that
// accept the token's algorithm and kid); only then is the payload decoded
// and returned.
func (c *Compact) Verify(keys []VerificationKey) ([]byte, error) {
	method := jwt.GetSigningMethod(c.Alg)
	if method == nil || c.Alg == "none" {
		return nil, fmt.Errorf("%w: no key can verify the token (algorithm or key id not accepted)", ErrBadToken)
	}
	set, err := keySet(keys, c.Alg, c.KID)
	if err != nil {
		return nil, fmt.Errorf("%w: no key can verify the token (algorithm or key id not accepted)", ErrBadToken)
	}
	verified := false
	for _, k := range set.Keys {
		if method.Verify(c.SigningInput, c.Signature, k) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, fmt.Errorf("%w: signature invalid", ErrBadToken)
	}
	payload, err := decodeSegment(c.payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload encoding", ErrMalformed)
	}
	return payload, nil
}

// VerifyCompact checks a compact JWS: a small header without "crit", every
// part canonical base64url, an algorithm one of the keys accepts (never
// "none"), and the signature over header.payload; only then is the payload
// decoded and returned.
func VerifyCompact(token string, keys []VerificationKey) ([]byte, error) {
	c, err := SplitToken(token)
	if err != nil {
		return nil, err
	}
	return c.Verify(keys)
}

// TokenHeader returns the alg and kid of a compact JWS, with the bounds and
// checks of VerifyCompact, before anything else of the token is decoded.
func TokenHeader(token string) (alg, kid string, err error) {
	hdr, _, _, _, err := splitCompact(token)
	if err != nil {
		return "", "", err
	}
	alg, _ = hdr["alg"].(string)
	return alg, headerKid(hdr), nil
}

// splitCompact splits a compact JWS and decodes its (bounded) header.
func splitCompact(token string) (hdr map[string]any, h, p, sig string, err error) {
	h, rest, ok1 := strings.Cut(token, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") || h == "" || p == "" {
		return nil, "", "", "", fmt.Errorf("%w: malformed token", ErrBadToken)
	}
	if len(h) > maxJWTHeader || len(sig) > maxJWTSignature {
		return nil, "", "", "", fmt.Errorf("%w: malformed token (header or signature too long)", ErrBadToken)
	}
	hb, err := decodeSegment(h)
	if err != nil {
		return nil, "", "", "", fmt.Errorf("%w: malformed token header", ErrBadToken)
	}
	if err := json.Unmarshal(hb, &hdr); err != nil || hdr == nil {
		return nil, "", "", "", fmt.Errorf("%w: malformed token header", ErrBadToken)
	}
	if _, ok := hdr["crit"]; ok {
		return nil, "", "", "", fmt.Errorf("%w: the crit header names extensions rolesync does not understand", ErrBadToken)
	}
	return hdr, h, p, sig, nil
}

// NewVerificationKey pins key to alg, or (alg empty) to every algorithm of
// its kind; weak or malformed keys are refused.
func NewVerificationKey(kid string, key any, alg string) (VerificationKey, error) {
	return keyFor(kid, key, alg)
}

// Algorithms returns the algorithms key may verify.
func (k VerificationKey) Algorithms() []string { return slices.Clone(k.algs) }

// CheckNumericDates refuses exp, nbf or iat that are not JSON numbers
// (a string date would otherwise be read as missing).
func CheckNumericDates(payload []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil {
		return fmt.Errorf("%w: the token payload is not a JSON object", ErrMalformed)
	}
	return checkNumericDates(top)
}

func checkNumericDates(top map[string]json.RawMessage) error {
	for _, name := range []string{"exp", "nbf", "iat"} {
		if raw, ok := top[name]; ok {
			if t := strings.TrimSpace(string(raw)); t == "" || (t[0] != '-' && (t[0] < '0' || t[0] > '9')) {
				return fmt.Errorf("%w: %s must be a number (seconds since the epoch)", ErrBadToken, name)
			}
		}
	}
	return nil
}

// keySet returns the keys that accept alg (and kid, when both name one).
func keySet(keys []VerificationKey, alg, kid string) (jwt.VerificationKeySet, error) {
	var set jwt.VerificationKeySet
	for _, k := range keys {
		if (kid == "" || k.kid == "" || k.kid == kid) && slices.Contains(k.algs, alg) {
			set.Keys = append(set.Keys, k.key)
		}
	}
	if len(set.Keys) == 0 {
		return set, fmt.Errorf("no key accepts %s", alg)
	}
	return set, nil
}

func headerKid(h map[string]any) string {
	kid, _ := h["kid"].(string)
	return kid
}

// eventClaimNames are the claim names a JWT event may carry besides
// arbitrary ones: matched exactly (encoding/json alone would let "ISS"
// fill iss).
var eventClaimNames = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "id", "time", "userID", "email", "issuer", "claims", "namespace"}

// checkRegisteredClaims refuses a registered or event claim name in
// another case, and numeric dates that are not JSON numbers.
func checkRegisteredClaims(payload []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil {
		return fmt.Errorf("%w: the token payload is not a JSON object", ErrMalformed)
	}
	if err := checkNameCase(top); err != nil {
		return err
	}
	return checkNumericDates(top)
}

// checkNameCase refuses top-level names that equal a known field only up
// to case.
func checkNameCase[V any](top map[string]V) error {
	for k := range top {
		for _, f := range eventClaimNames {
			if k != f && strings.EqualFold(k, f) {
				return &FieldError{k, "unknown field (names are case-sensitive: did you mean " + f + "?)"}
			}
		}
	}
	return nil
}

// TokenErrorText names which check of a JWT failed, without echoing the
// token.
func TokenErrorText(err error) string {
	for _, e := range []struct {
		target error
		text   string
	}{
		{jwt.ErrTokenMalformed, "malformed token"},
		{jwt.ErrTokenUnverifiable, "no key can verify the token (algorithm or key id not accepted)"},
		{jwt.ErrTokenSignatureInvalid, "signature invalid"},
		{jwt.ErrTokenExpired, "token expired"},
		{jwt.ErrTokenNotValidYet, "token not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "token used before issued"},
		{jwt.ErrTokenInvalidIssuer, "wrong iss"},
		{jwt.ErrTokenInvalidAudience, "wrong aud"},
		{jwt.ErrTokenRequiredClaimMissing, "a required claim (exp, iat) is missing"},
		{jwt.ErrTokenInvalidClaims, "invalid claims"},
	} {
		if errors.Is(err, e.target) {
			return e.text
		}
	}
	return "invalid token"
}
