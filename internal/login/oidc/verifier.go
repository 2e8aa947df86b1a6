package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/rolesync/rolesync/internal/claimpath"
	"github.com/rolesync/rolesync/internal/login/authn"
)

// ErrNamespaceNotAllowed means the token's issuer may not record logins in
// the namespace of the URL.
var ErrNamespaceNotAllowed = errors.New("the token's issuer is not allowed in this namespace")

// Defaults of Options.
const (
	DefaultRefreshInterval  = 5 * time.Minute
	DefaultUnknownKIDPeriod = 10 * time.Second
	httpTimeout             = 10 * time.Second
	// unknownKIDFetchTimeout bounds the wait of a login whose kid is not
	// cached (a key rotation) for the provider's keys: well inside the
	// login server's 15 s write timeout.
	unknownKIDFetchTimeout = 5 * time.Second
	maxDocumentBytes       = 1 << 20
)

// Options configure a Verifier.
type Options struct {
	// ConfigFile is the --login-oidc-config file, re-read when it changes.
	ConfigFile string
	// Leeway on exp, nbf and iat (at most authn.MaxLeeway).
	Leeway time.Duration
	// RefreshInterval is how often each provider's keys are re-fetched in
	// the background (default DefaultRefreshInterval).
	RefreshInterval time.Duration
	// UnknownKIDPeriod: a token whose kid is not cached re-fetches the
	// provider's keys at most once per period (default
	// DefaultUnknownKIDPeriod); other such tokens fail at once.
	UnknownKIDPeriod time.Duration
	Now              func() time.Time
	Log              logr.Logger
}

// Verifier verifies identity-provider tokens.
type Verifier struct {
	opts Options
	src  *authn.FileSource[*Config]

	mu        sync.Mutex
	ctx       context.Context // ends the providers' background work
	applied   *Config
	providers map[string]*provider // by issuer URL
}

// NewVerifier reads the configuration once (an error if it is unusable).
// Providers are discovered in the background; Start gives them the
// context that ends their work.
func NewVerifier(o Options) (*Verifier, error) {
	if o.Leeway < 0 || o.Leeway > authn.MaxLeeway {
		return nil, fmt.Errorf("leeway must be between 0 and %s", authn.MaxLeeway)
	}
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.UnknownKIDPeriod <= 0 {
		o.UnknownKIDPeriod = DefaultUnknownKIDPeriod
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	v := &Verifier{opts: o, ctx: context.Background(), providers: map[string]*provider{}}
	src, err := authn.NewFileSource(o.ConfigFile, ParseConfig, v.configChanged)
	if err != nil {
		return nil, err
	}
	v.src = src
	return v, nil
}

// Start runs the providers' discovery and key refreshes until ctx ends.
func (v *Verifier) Start(ctx context.Context) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ctx = ctx
	for url, p := range v.providers { // started before Start: restart under ctx
		p.stop()
		delete(v.providers, url)
	}
	v.applied = nil
	if cfg, err := v.src.Get(v.opts.Now(), false); err == nil {
		v.apply(cfg)
	}
}

func (v *Verifier) configChanged(path string, err error) {
	if err != nil {
		v.opts.Log.Error(err, "OIDC configuration unusable: every identity-provider token is refused (503) until it is fixed", "file", path)
		return
	}
	v.opts.Log.Info("OIDC configuration usable again", "file", path)
}

// current returns the providers of the configuration in force by issuer
// URL, applying a changed configuration first.
func (v *Verifier) current() (map[string]*provider, error) {
	cfg, err := v.src.Get(v.opts.Now(), false)
	if err != nil {
		return nil, authn.ErrNoKeys
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if cfg != v.applied {
		v.apply(cfg)
	}
	ps := make(map[string]*provider, len(cfg.Issuers))
	for i := range cfg.Issuers {
		p := v.providers[cfg.Issuers[i].URL]
		p.issuer.Store(&cfg.Issuers[i]) // audiences, claims, namespaces as reloaded
		ps[cfg.Issuers[i].URL] = p
	}
	return ps, nil
}

// apply starts providers for new issuers, keeps those whose connection is
// unchanged (and their cached keys), and stops the others. v.mu is held.
func (v *Verifier) apply(cfg *Config) {
	keep := map[string]bool{}
	for i := range cfg.Issuers {
		is := &cfg.Issuers[i]
		keep[is.URL] = true
		if p, ok := v.providers[is.URL]; ok && p.issuer.Load().sameConnection(is) {
			continue
		} else if ok {
			p.stop()
		}
		v.providers[is.URL] = v.startProvider(is)
	}
	for url, p := range v.providers {
		if !keep[url] {
			p.stop()
			delete(v.providers, url)
		}
	}
	v.applied = cfg
}

// Verify authenticates a provider's token for namespace and turns it into
// a login event. The provider is chosen by the token's iss before any key
// is touched: a token is only ever checked against its own issuer's keys,
// so one slow or unreachable provider never delays another's logins, and
// two issuers that share signing keys (Entra's common keys) each verify
// their own tokens. Errors: authn.ErrNoKeys (the configuration is unusable,
// or the token's issuer has no keys yet: retry), authn.ErrBadToken,
// authn.ErrClockSkew, ErrNamespaceNotAllowed, or an event decoding error
// (authn.FieldError, authn.ErrMalformed).
func (v *Verifier) Verify(ctx context.Context, token, namespace string) (*authn.Event, error) {
	providers, err := v.current()
	if err != nil {
		return nil, err
	}
	c, err := authn.SplitToken(token)
	if err != nil {
		return nil, err
	}
	iss, err := c.UnverifiedIssuer()
	if err != nil {
		return nil, err
	}
	p := providers[iss]
	if p == nil {
		return nil, fmt.Errorf("%w: the token's issuer is not a trusted provider", authn.ErrBadToken)
	}
	keys, ready := p.keys(ctx, c.KID, c.Alg)
	switch {
	case !ready:
		return nil, authn.ErrNoKeys
	case len(keys) == 0:
		return nil, fmt.Errorf("%w: no key of the token's issuer verifies it (key id or algorithm not accepted)", authn.ErrBadToken)
	case c.KID == "" && len(keys) > MaxKeysWithoutKID:
		// Each candidate costs a signature check: a token that names no key
		// may not make the server try them all.
		return nil, fmt.Errorf("%w: the token names no key (kid) and its issuer has %d keys for %s", authn.ErrBadToken, len(keys), c.Alg)
	}
	payload, err := c.Verify(keys)
	if err != nil {
		return nil, fmt.Errorf("%w: no key of the token's issuer verifies it (signature invalid)", authn.ErrBadToken)
	}
	return v.event(c, payload, p.issuer.Load(), namespace)
}

// MaxKeysWithoutKID bounds the keys a token without kid is checked against.
const MaxKeysWithoutKID = 4

// event checks the verified payload's registered claims against the issuer
// that signed it and builds the login event.
func (v *Verifier) event(c *authn.Compact, payload []byte, is *Issuer, namespace string) (*authn.Event, error) {
	if err := authn.CheckBounds(payload); err != nil {
		return nil, err
	}
	if err := authn.CheckNumericDates(payload); err != nil {
		return nil, err
	}
	var rc jwt.RegisteredClaims
	if err := json.Unmarshal(payload, &rc); err != nil {
		return nil, fmt.Errorf("%w: registered claims of the wrong type (iss, aud, jti must be strings)", authn.ErrBadToken)
	}
	now := v.opts.Now()
	val := jwt.NewValidator(
		jwt.WithIssuer(is.URL),
		jwt.WithAudience(is.Audiences...),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.opts.Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err := val.Validate(rc); err != nil {
		return nil, fmt.Errorf("%w: %s", authn.ErrBadToken, authn.TokenErrorText(err))
	}
	if err := is.checkAuthorizedParty(payload, rc.Audience); err != nil {
		return nil, err
	}
	if rc.IssuedAt == nil {
		return nil, fmt.Errorf("%w: iat is required", authn.ErrBadToken)
	}
	if d := now.Sub(rc.IssuedAt.Time); d > authn.MaxSkew || d < -authn.MaxSkew {
		// Replays are remembered for authn.ReplayWindow: a token is only
		// taken while it is younger than that.
		return nil, authn.ErrClockSkew
	}
	if !is.allows(namespace) {
		return nil, ErrNamespaceNotAllowed
	}
	claims, err := claimpath.DecodeClaims(payload)
	if err != nil || claims == nil {
		return nil, fmt.Errorf("%w: the token payload is not a JSON object", authn.ErrMalformed)
	}
	ev := &authn.Event{ID: replayID(is.URL, rc.ID, c.SigningInput), Time: rc.IssuedAt.Time, Issuer: is.URL, Claims: claims,
		Namespace: namespace, SignedAt: rc.IssuedAt.Time}
	uid, _ := is.userID.Lookup(claims)
	if ev.UserID, _ = uid.(string); ev.UserID == "" {
		return nil, &authn.FieldError{Field: is.UserIDClaim, Msg: "the token has no string claim " + is.UserIDClaim + " (userIDClaim) for the user id"}
	}
	if email, ok := is.email.Lookup(claims); ok {
		if ev.Email, ok = email.(string); !ok {
			return nil, &authn.FieldError{Field: is.EmailClaim, Msg: "the email claim (emailClaim) is not a string"}
		}
	}
	if !is.emailVerified(claims) {
		// An email the provider does not vouch for is a claim like any
		// other, never the address that binds the user to a LiteLLM row.
		ev.Email = ""
	}
	if err := ev.Validate(); err != nil {
		var fe *authn.FieldError
		if errors.As(err, &fe) && fe.Field == "userID" {
			fe.Field = is.UserIDClaim
		} else if errors.As(err, &fe) && fe.Field == "email" {
			fe.Field = is.EmailClaim
		}
		return nil, err
	}
	return ev, nil
}

// replayID is what makes one token one login: its issuer and jti, or,
// without a jti, a digest of what its signature covers (header.payload,
// canonical since every part was decoded strictly). The signature itself is
// left out: ECDSA signatures are malleable (s and n-s both verify), so two
// signatures over the same bytes are the same token.
func replayID(issuer, jti, signingInput string) string {
	var sum [sha256.Size]byte
	kind := "jti:"
	if jti != "" {
		sum = sha256.Sum256([]byte(issuer + "\x00" + jti))
	} else {
		kind, sum = "jws:", sha256.Sum256([]byte(signingInput))
	}
	return kind + base64.RawURLEncoding.EncodeToString(sum[:])
}

// provider is one issuer's discovery state and key cache.
type provider struct {
	issuer  atomic.Pointer[Issuer]
	cancel  context.CancelFunc
	kf      atomic.Pointer[keyfunc.Keyfunc] // nil until discovery succeeded
	unknown *rate.Limiter                   // re-fetches for unknown kids
	log     logr.Logger
}

func (v *Verifier) startProvider(is *Issuer) *provider {
	ctx, cancel := context.WithCancel(v.ctx)
	p := &provider{cancel: cancel, unknown: rate.NewLimiter(rate.Every(v.opts.UnknownKIDPeriod), 1),
		log: v.opts.Log.WithValues("issuer", is.URL)}
	p.issuer.Store(is)
	go p.discover(ctx, v.opts.RefreshInterval)
	return p
}

func (p *provider) stop() { p.cancel() }

// keys returns the cached keys that may verify a token with kid and alg,
// and whether the provider has keys at all. An unknown kid re-fetches the
// keys (rate-limited: past the limit the token fails at once, no waiting).
func (p *provider) keys(ctx context.Context, kid, alg string) ([]authn.VerificationKey, bool) {
	kfp := p.kf.Load()
	if kfp == nil {
		return nil, false
	}
	store := (*kfp).Storage()
	all, err := store.KeyReadAll(ctx)
	if err != nil {
		return nil, false
	}
	if kid != "" && !hasKID(all, kid) && p.unknown.Allow() {
		fctx, cancel := context.WithTimeout(ctx, unknownKIDFetchTimeout)
		if _, err := store.KeyRead(fctx, kid); err == nil { // refreshes the cache
			all, _ = store.KeyReadAll(ctx)
		}
		cancel()
	}
	var keys []authn.VerificationKey
	for _, j := range all {
		m := j.Marshal()
		if kid != "" && m.KID != kid {
			continue
		}
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		k, err := authn.NewVerificationKey(m.KID, publicKey(j.Key()), m.ALG.String())
		if err != nil {
			continue // a key rolesync refuses (weak, unknown kind): never used
		}
		for _, a := range k.Algorithms() {
			if a == alg {
				keys = append(keys, k)
				break
			}
		}
	}
	return keys, len(all) > 0
}

func hasKID(all []jwkset.JWK, kid string) bool {
	for _, j := range all {
		if j.Marshal().KID == kid {
			return true
		}
	}
	return false
}

// publicKey returns the public half of a key a JWKS (wrongly) published
// with its private part.
func publicKey(k any) any {
	if pk, ok := k.(interface{ Public() any }); ok {
		return pk.Public()
	}
	return k
}

// discover reads the provider's discovery document until it succeeds
// (backing off), then hands its jwks_uri to keyfunc, which fetches the keys
// now and every refresh interval, and re-fetches on demand (keys).
func (p *provider) discover(ctx context.Context, refresh time.Duration) {
	is := p.issuer.Load()
	client := httpClient(is)
	backoff := time.Second
	for {
		jwksURI, err := discoveryDocument(ctx, client, is)
		if err == nil {
			kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURI}, keyfunc.Override{
				Client:           client,
				HTTPTimeout:      httpTimeout,
				RefreshInterval:  refresh,
				RateLimitWaitMax: httpTimeout, // bounds the on-demand fetch; p.unknown is the limit
				// Unknown kids are limited by p.unknown, before keyfunc is asked.
				RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
				RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
					return func(_ context.Context, err error) {
						p.log.Error(err, "Fetching the provider's keys failed; the cached keys stay in use", "jwksURI", u)
					}
				},
			})
			if err == nil {
				p.kf.Store(&kf)
				p.log.Info("OIDC provider discovered", "jwksURI", jwksURI)
				return
			}
		}
		p.log.Error(err, "OIDC discovery failed; its tokens are refused (503) until it succeeds", "retryIn", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// discoveryDocument reads the issuer's OpenID configuration: its issuer
// must be exactly the configured one, its jwks_uri https (or loopback http)
// on the issuer's own host or one its configuration lists (jwksHosts).
func discoveryDocument(ctx context.Context, client *http.Client, is *Issuer) (string, error) {
	issuer := is.URL
	ctx, cancel := context.WithTimeout(ctx, httpTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, issuer+"/.well-known/openid-configuration", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discovery: %s answered %s", req.URL, resp.Status)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return "", fmt.Errorf("discovery: %s: %w", req.URL, err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("discovery: the document names issuer %q, not %q", doc.Issuer, issuer)
	}
	if err := is.checkJWKSURI(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery: jwks_uri %w", err)
	}
	return doc.JWKSURI, nil
}

// httpClient reaches one provider: its CA (or the system's), a timeout,
// and responses bounded to maxDocumentBytes.
func httpClient(is *Issuer) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: is.roots}
	return &http.Client{Timeout: httpTimeout, Transport: boundedTransport{tr},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type boundedTransport struct{ next http.RoundTripper }

func (b boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(r)
	if err == nil {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, maxDocumentBytes), resp.Body}
	}
	return resp, err
}
