package login

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/login/authn"
	"github.com/rolesync/rolesync/internal/proxyuser"
)

// TestHostileRequests sends requests an attacker or a broken client could
// send. Each gets its status and reason, and no ProxyUser is created or
// changed.
func TestHostileRequests(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	withMapping(t, ns, strictMapping)
	// An existing user, and an event id already used.
	seen := event("seen-id", "victim", time.Now().Add(-time.Second), map[string]any{"groups": []any{"platform"}})
	if r := postEvent(t, ns, seen); r.status != http.StatusOK {
		t.Fatalf("setup: %d %s", r.status, r.body)
	}
	waitUntil(t, 30*time.Second, func() error { // settled: the controller's last write for this generation is in
		if u := getUser(t, ns, proxyuser.Name(idpIssuer, "victim")); u.Status.Role == "" || u.Status.ObservedGeneration != u.Generation {
			return errNotSettled
		}
		return nil
	})

	valid := func(edit func(map[string]any)) map[string]any {
		ev := inNS(ns, event("hostile-"+randID(), "mallory", time.Now(), map[string]any{"groups": []any{"admins-all"}}))
		if edit != nil {
			edit(ev)
		}
		return ev
	}
	jsonOf := func(v any) []byte { b, _ := json.Marshal(v); return b }
	signed := func(body []byte) map[string]string {
		sig := authn.Sign([]byte(secrets[0]), body, time.Now())
		recordSignature(sig)
		return map[string]string{authn.SignatureHeader: sig}
	}
	deep := func(levels int) any {
		var v any = "x"
		for range levels {
			v = map[string]any{"a": v}
		}
		return v
	}
	many := make([]any, 2100)
	for i := range many {
		many[i] = "g"
	}
	rsaPub, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})
	strangerKey, _ := rsa.GenerateKey(rand.Reader, 2048)

	type req struct {
		method, path, ctype string
		body                []byte
		header              map[string]string
	}
	hmacReq := func(body []byte) req {
		return req{http.MethodPost, eventsPath(ns), "application/json", body, signed(body)}
	}
	evReq := func(edit func(map[string]any)) req { return hmacReq(jsonOf(valid(edit))) }
	jwtReq := func(tok string) req { return req{http.MethodPost, eventsPath(ns), "application/jwt", []byte(tok), nil} }
	sigAt := func(at time.Time, secret string) req {
		body := jsonOf(valid(nil))
		sig := authn.Sign([]byte(secret), body, at)
		recordSignature(sig)
		return req{http.MethodPost, eventsPath(ns), "application/json", body, map[string]string{authn.SignatureHeader: sig}}
	}
	tok := func(method jwt.SigningMethod, key any, kid string, edit func(jwt.MapClaims)) string {
		return token(t, valid(nil), method, key, kid, edit)
	}

	cases := []struct {
		name   string
		req    req
		status int
		reason string
	}{
		{"bad JSON", hmacReq([]byte(`{"id":`)), 400, ReasonMalformed},
		{"not an object", hmacReq([]byte(`[]`)), 400, ReasonMalformed},
		{"userID a number", evReq(func(e map[string]any) { e["userID"] = 42 }), 400, ReasonInvalidField},
		{"claims a string", evReq(func(e map[string]any) { e["claims"] = "groups=admins" }), 400, ReasonInvalidField},
		{"claims missing", evReq(func(e map[string]any) { delete(e, "claims") }), 400, ReasonInvalidField},
		{"claims null", evReq(func(e map[string]any) { e["claims"] = nil }), 400, ReasonInvalidField},
		{"claims a list", evReq(func(e map[string]any) { e["claims"] = []any{"admins-all"} }), 400, ReasonInvalidField},
		{"id missing", evReq(func(e map[string]any) { delete(e, "id") }), 400, ReasonInvalidField},
		{"id too long", evReq(func(e map[string]any) { e["id"] = strings.Repeat("i", 129) }), 400, ReasonInvalidField},
		{"userID missing", evReq(func(e map[string]any) { delete(e, "userID") }), 400, ReasonInvalidField},
		{"userID too long", evReq(func(e map[string]any) { e["userID"] = strings.Repeat("u", 257) }), 400, ReasonInvalidField},
		{"userID with a control character", evReq(func(e map[string]any) { e["userID"] = "mal\nlory" }), 400, ReasonInvalidField},
		{"userID invalid UTF-8", hmacReq([]byte(`{"id":"x1","time":"` + time.Now().UTC().Format(time.RFC3339) + `","userID":"\xff\xfe","issuer":"` + idpIssuer + `","claims":{}}`)), 400, ReasonMalformed},
		{"email invalid", evReq(func(e map[string]any) { e["email"] = "not an email" }), 400, ReasonInvalidField},
		{"email with a display name", evReq(func(e map[string]any) { e["email"] = "Mallory <m@example.com>" }), 400, ReasonInvalidField},
		{"issuer missing", evReq(func(e map[string]any) { delete(e, "issuer") }), 400, ReasonInvalidField},
		{"issuer not a URL", evReq(func(e map[string]any) { e["issuer"] = "idp" }), 400, ReasonInvalidField},
		{"time missing", evReq(func(e map[string]any) { delete(e, "time") }), 400, ReasonInvalidField},
		{"time not RFC 3339", evReq(func(e map[string]any) { e["time"] = "yesterday" }), 400, ReasonInvalidField},
		{"time in the future", evReq(func(e map[string]any) { e["time"] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339) }), 400, ReasonInvalidField},
		{"unknown field", evReq(func(e map[string]any) { e["role"] = "proxy_admin" }), 400, ReasonInvalidField},
		{"trailing data", hmacReq(append(jsonOf(valid(nil)), []byte(` {"more":1}`)...)), 400, ReasonMalformed},
		{"huge body", hmacReq(jsonOf(valid(func(e map[string]any) { e["claims"] = map[string]any{"pad": strings.Repeat("x", authn.MaxBodyBytes)} }))), 413, ReasonTooLarge},
		{"deep nesting", evReq(func(e map[string]any) { e["claims"] = map[string]any{"groups": deep(40)} }), 400, ReasonInvalidField},
		{"too many claim values", evReq(func(e map[string]any) { e["claims"] = map[string]any{"groups": many} }), 400, ReasonInvalidField},
		{"oversized string", evReq(func(e map[string]any) { e["claims"] = map[string]any{"groups": strings.Repeat("g", 5000)} }), 400, ReasonInvalidField},
		{"no signature", req{http.MethodPost, eventsPath(ns), "application/json", jsonOf(valid(nil)), nil}, 401, ReasonBadSignature},
		{"garbled signature", req{http.MethodPost, eventsPath(ns), "application/json", jsonOf(valid(nil)), map[string]string{authn.SignatureHeader: "nonsense"}}, 401, ReasonBadSignature},
		{"signature not hex", req{http.MethodPost, eventsPath(ns), "application/json", jsonOf(valid(nil)), map[string]string{authn.SignatureHeader: "t=1,v1=zz"}}, 401, ReasonBadSignature},
		{"expired signature time", sigAt(time.Now().Add(-10*time.Minute), secrets[0]), 401, ReasonClockSkew},
		{"future signature time", sigAt(time.Now().Add(10*time.Minute), secrets[0]), 401, ReasonClockSkew},
		{"wrong secret", sigAt(time.Now(), "wrong-secret-0123456789abcdef0123456789ab"), 401, ReasonBadSignature},
		{"rotated-out secret", sigAt(time.Now(), "ancient-secret-0123456789abcdef0123456789"), 401, ReasonBadSignature},
		{"tampered body", func() req {
			r := hmacReq(jsonOf(valid(nil)))
			r.body = jsonOf(valid(func(e map[string]any) { e["claims"] = map[string]any{"groups": []any{"admins-root"}} }))
			return r
		}(), 401, ReasonBadSignature},
		{"alg none", jwtReq(tok(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", nil)), 401, ReasonBadToken},
		{"HS256 with the RSA public key, kid rsa", jwtReq(tok(jwt.SigningMethodHS256, rsaPEM, "rsa", nil)), 401, ReasonBadToken},
		{"HS256 with the RSA public key, no kid", jwtReq(tok(jwt.SigningMethodHS256, rsaPEM, "", nil)), 401, ReasonBadToken},
		{"wrong iss", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { c["iss"] = "https://evil.example.com" })), 401, ReasonBadToken},
		{"wrong aud", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { c["aud"] = "someone-else" })), 401, ReasonBadToken},
		{"missing jti", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { delete(c, "jti") })), 401, ReasonBadToken},
		{"expired token", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() })), 401, ReasonBadToken},
		{"missing exp", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { delete(c, "exp") })), 401, ReasonBadToken},
		{"missing iat", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { delete(c, "iat") })), 401, ReasonBadToken},
		{"old iat", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { c["iat"] = time.Now().Add(-10 * time.Minute).Unix() })), 401, ReasonClockSkew},
		{"unknown signing key", jwtReq(tok(jwt.SigningMethodRS256, strangerKey, "rsa", nil)), 401, ReasonBadToken},
		{"garbage token", jwtReq("abc.def"), 401, ReasonBadToken},
		{"id differs from jti", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { c["id"] = "other" })), 400, ReasonInvalidField},
		{"deep nesting in a token", jwtReq(tok(jwt.SigningMethodES256, ecKey, "ec", func(c jwt.MapClaims) { c["claims"] = map[string]any{"groups": deep(40)} })), 400, ReasonInvalidField},
		{"authn.Replayed id", hmacReq(jsonOf(maps.Clone(seen))), 409, ReasonReplay},
		{"namespace does not exist", func() req {
			r := evReq(func(e map[string]any) { e["namespace"] = "no-such-namespace" })
			r.path = eventsPath("no-such-namespace")
			return r
		}(), 404, ReasonNoNamespace},
		{"path traversal", func() req { r := evReq(nil); r.path = "/v1/namespaces/../login-events"; return r }(), 404, ReasonNotFound},
		{"encoded path traversal", func() req { r := evReq(nil); r.path = "/v1/namespaces/%2e%2e%2fkube-system/login-events"; return r }(), 404, ReasonNotFound},
		{"namespace not DNS-1123", func() req { r := evReq(nil); r.path = "/v1/namespaces/Default/login-events"; return r }(), 404, ReasonNotFound},
		{"unknown path", func() req { r := evReq(nil); r.path = "/v1/login-events"; return r }(), 404, ReasonNotFound},
		{"the SCIM path on the login listener", func() req { r := evReq(nil); r.path = "/scim/v2/" + ns + "/Users"; return r }(), 404, ReasonNotFound},
		{"GET", func() req { r := evReq(nil); r.method = http.MethodGet; return r }(), 405, ReasonMethod},
		{"text/plain", func() req { r := evReq(nil); r.ctype = "text/plain"; return r }(), 415, ReasonMediaType},
		{"no content type", func() req { r := evReq(nil); r.ctype = ""; return r }(), 415, ReasonMediaType},
		// Issue 12: holes outside the first hostile run.
		{"event time an hour before its signature", evReq(func(e map[string]any) { e["time"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) }), 400, ReasonInvalidField},
		{"event time years ago", evReq(func(e map[string]any) { e["time"] = "2001-01-01T00:00:00Z" }), 400, ReasonInvalidField},
		{"token time far from iat", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { c["time"] = time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339) })), 400, ReasonInvalidField},
		{"crit header", jwtReq(func() string {
			tk := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": jwtIssuer, "aud": jwtAudience, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(), "jti": randID(),
				"time": time.Now().UTC().Format(time.RFC3339), "userID": "mallory", "issuer": idpIssuer, "claims": map[string]any{"groups": []any{"admins-all"}}})
			tk.Header["kid"], tk.Header["crit"], tk.Header["b64"] = "rsa", []string{"b64"}, false
			sgn, _ := tk.SignedString(rsaKey)
			secretsUsed.Store(sgn, true)
			return sgn
		}()), 401, ReasonBadToken},
		{"exp as a string", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { c["exp"] = strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10) })), 401, ReasonBadToken},
		{"iat as a string", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { c["iat"] = strconv.FormatInt(time.Now().Unix(), 10) })), 401, ReasonBadToken},
		{"ISS in upper case", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { c["ISS"] = c["iss"] })), 400, ReasonInvalidField},
		{"USERID in another case", evReq(func(e map[string]any) { e["UserID"] = "admin" }), 400, ReasonInvalidField},
		{"huge unsigned token", jwtReq(func() string {
			h := base64URL(`{"alg":"RS256","kid":"rsa"}`)
			return h + "." + base64URL(`{"claims":{"pad":"`+strings.Repeat("x", 700<<10)+`"}}`) + "." + base64URL("not a signature")
		}()), 401, ReasonBadToken},
		{"namespace not a name", evReq(func(e map[string]any) { e["namespace"] = "Not/A/Namespace" }), 400, ReasonInvalidField},
		{"no namespace signed", evReq(func(e map[string]any) { delete(e, "namespace") }), 401, ReasonNamespaceRequired},
		{"token without a namespace", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { delete(c, "namespace") })), 401, ReasonNamespaceRequired},
		{"signed for another namespace", evReq(func(e map[string]any) { e["namespace"] = "kube-system" }), 401, ReasonNamespace},
		{"token signed for another namespace", jwtReq(tok(jwt.SigningMethodRS256, rsaKey, "rsa", func(c jwt.MapClaims) { c["namespace"] = "kube-system" })), 401, ReasonNamespace},
		{"denied new user", evReq(func(e map[string]any) { e["claims"] = map[string]any{"groups": []any{"sales"}} }), 403, rolesyncv1.ReasonNoMatch},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, ns)
			r := send(t, tc.req.method, tc.req.path, tc.req.ctype, tc.req.body, tc.req.header)
			if r.status != tc.status || r.err.Reason != tc.reason {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.reason)
			}
			if r.err.Error == "" {
				t.Fatal("no error message")
			}
			if after := snapshot(t, ns); !maps.Equal(before, after) {
				t.Fatalf("ProxyUsers changed: %v -> %v", before, after)
			}
		})
	}
}

var errNotSettled = errors.New("not settled yet")

func base64URL(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func randID() string { return strconv.FormatUint(mrand.Uint64(), 36) }
