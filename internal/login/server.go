package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/keymutex"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/claimpath"
	"github.com/rolesync/rolesync/internal/emailaddr"
	"github.com/rolesync/rolesync/internal/listen"
	"github.com/rolesync/rolesync/internal/login/authn"
	"github.com/rolesync/rolesync/internal/login/oidc"
	"github.com/rolesync/rolesync/internal/priority"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// Machine-readable reasons of error responses.
const (
	ReasonMalformed        = "MalformedEvent"
	ReasonInvalidField     = "InvalidField"
	ReasonBadSignature     = "InvalidSignature"
	ReasonBadToken         = "InvalidToken"
	ReasonClockSkew        = "ClockSkew"
	ReasonNotFound         = "NotFound"
	ReasonNoNamespace      = "NamespaceNotFound"
	ReasonMethod           = "MethodNotAllowed"
	ReasonReplay           = "Replay"
	ReasonTooLarge         = "TooLarge"
	ReasonMediaType        = "UnsupportedMediaType"
	ReasonRateLimited      = "RateLimited"
	ReasonUnavailable      = "Unavailable"
	ReasonUserBeingDeleted = "UserBeingDeleted"
	ReasonInternal         = "InternalError"
	ReasonNoCredentials    = "NoCredentials"
	ReasonNamespace        = "NamespaceMismatch"
	// ReasonNamespaceRequired: the event signs no namespace field
	// (--login-require-namespace, the default).
	ReasonNamespaceRequired = "NamespaceRequired"
	ReasonNameTaken         = "NameTaken"
	// ReasonNamespaceNotAllowed: the token's identity provider may not
	// record logins in this namespace (its namespaces list).
	ReasonNamespaceNotAllowed = "NamespaceNotAllowed"
	// ReasonNamespaceNotServed: the namespace belongs to another shard
	// (--watch-namespaces): post to the manager that serves it.
	ReasonNamespaceNotServed = "NamespaceNotServed"
)

// The forms of a login, the form label of the metrics.
const (
	FormHMAC    = "hmac"    // login-events, JSON signed with an HMAC secret
	FormJWT     = "jwt"     // login-events, an event signed as a JWT by the sender
	FormToken   = "token"   // login-tokens, the identity provider's own token
	FormUnknown = "unknown" // refused before the form was known
)

var (
	eventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rolesync_login_events_total",
		Help: "Login events by form (hmac, jwt, token, unknown) and result: ok, stale, denied, or the reason of the error response.",
	}, []string{"form", "result"})
	eventDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rolesync_login_event_duration_seconds",
		Help:    "Time to answer a login event, end to end.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	writeDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rolesync_login_write_duration_seconds",
		Help:    "Time the login's ProxyUser create or apply took at the Kubernetes API (part of rolesync_login_event_duration_seconds).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
)

func init() {
	metrics.Registry.MustRegister(eventsTotal, eventDuration, writeDuration)
}

// Options configure the login server; cmd/manager binds them to flags.
type Options struct {
	BindAddress    string
	CertDir        string
	Insecure       bool
	HMACSecretFile string
	JWTKeysFile    string
	JWTIssuer      string
	JWTAudience    string
	JWTLeeway      time.Duration
	// OIDCConfigFile lists the identity providers whose own tokens are
	// accepted at login-tokens (see package oidc).
	OIDCConfigFile string
	KeepClaims     []string
	// RequireNamespace refuses signed events (HMAC, JWT) without a signed
	// namespace; cmd/manager defaults it to true.
	RequireNamespace bool
	RateLimit        float64 // events per second per client; 0 = unlimited
	RateBurst        int
	// GroupsClaim is the claim the directory's groups are
	// (--scim-groups-claim; default proxyuser.DefaultGroupsClaim).
	GroupsClaim string
	// Namespaces are the namespaces this manager serves (--watch-namespaces;
	// nil: all). Logins for others answer 404 NamespaceNotServed.
	Namespaces []string
	// Priority, when set, is told of every login in flight: the
	// controllers' background work holds off new writes meanwhile (not a
	// flag; cmd/manager shares one gate).
	Priority *priority.Gate
}

// +kubebuilder:rbac:groups=rolesync.dev,resources=proxyusers,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=rolesync.dev,resources=proxyusers/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Server answers login events. It runs on every replica (not only the
// leader).
type Server struct {
	opts      Options
	client    client.Client // the manager's client: cached reads, writes
	apiReader client.Reader // live reads, after a write conflict
	registry  *rolemap.Registry
	recorder  events.EventRecorder
	log       logr.Logger
	now       func() time.Time

	secrets    *authn.FileSource[[]authn.Secret]
	jwt        *authn.JWTVerifier
	oidc       *oidc.Verifier
	keepClaims []claimpath.Path
	replay     *authn.ReplayCache
	limiter    *authn.ClientLimiter
	locks      keymutex.KeyMutex // per-identity serialisation, striped (identityLocks)
	inFlight   chan struct{}     // bounds the requests being handled at once
	addr       chan string
}

// Bounds on concurrent work: past MaxInFlight requests being handled, more
// wait up to inFlightWait with their body unread (each may hold up to
// MaxBodyBytes once read), then get 503; past MaxConnections open
// connections, new ones wait in the kernel's accept queue.
const (
	MaxInFlight    = 32
	MaxConnections = 512
	inFlightWait   = 5 * time.Second
)

// NewServer checks the options and loads the secrets and keys.
func NewServer(o Options, c client.Client, apiReader client.Reader, registry *rolemap.Registry, recorder events.EventRecorder, log logr.Logger) (*Server, error) {
	s := &Server{opts: o, client: c, apiReader: apiReader, registry: registry, recorder: recorder, log: log,
		now: time.Now, replay: authn.NewReplayCache(), limiter: authn.NewClientLimiter(o.RateLimit, o.RateBurst), addr: make(chan string, 1),
		inFlight: make(chan struct{}, MaxInFlight), locks: keymutex.NewHashed(identityLocks)}
	if o.HMACSecretFile == "" && o.JWTKeysFile == "" && o.OIDCConfigFile == "" {
		return nil, errors.New("login server: set --login-hmac-secret-file, --login-jwt-keys-file or --login-oidc-config: every event must be authenticated")
	}
	if !o.Insecure && o.CertDir == "" {
		return nil, errors.New("login server: set --login-cert-dir (tls.crt, tls.key), or --login-insecure for local use")
	}
	if o.HMACSecretFile != "" {
		src, err := authn.NewFileSource(o.HMACSecretFile, authn.ParseSecrets, s.credentialsChanged)
		if err != nil {
			return nil, fmt.Errorf("login server: HMAC secrets: %w", err)
		}
		s.secrets = src
	}
	if o.JWTKeysFile != "" {
		if o.JWTIssuer == "" || o.JWTAudience == "" {
			return nil, errors.New("login server: --login-jwt-issuer and --login-jwt-audience are required with --login-jwt-keys-file")
		}
		if o.JWTLeeway < 0 || o.JWTLeeway > authn.MaxLeeway {
			return nil, fmt.Errorf("login server: --login-jwt-leeway must be between 0 and %s", authn.MaxLeeway)
		}
		keys, err := authn.NewFileSource(o.JWTKeysFile, authn.ParseKeys, s.credentialsChanged)
		if err != nil {
			return nil, fmt.Errorf("login server: JWT keys: %w", err)
		}
		s.jwt = &authn.JWTVerifier{Issuer: o.JWTIssuer, Audience: o.JWTAudience, Leeway: o.JWTLeeway, Now: func() time.Time { return s.now() },
			Keys: func() ([]authn.VerificationKey, error) { return keys.Get(s.now(), false) }}
	}
	if o.OIDCConfigFile != "" {
		v, err := oidc.NewVerifier(oidc.Options{ConfigFile: o.OIDCConfigFile, Leeway: o.JWTLeeway, Now: func() time.Time { return s.now() },
			Log: log.WithName("oidc")})
		if err != nil {
			return nil, fmt.Errorf("login server: --login-oidc-config: %w", err)
		}
		s.oidc = v
	}
	for _, k := range o.KeepClaims {
		p, err := claimpath.Parse(k)
		if err != nil {
			return nil, fmt.Errorf("login server: --login-keep-claims %q: %w", k, err)
		}
		s.keepClaims = append(s.keepClaims, p)
	}
	return s, nil
}

// credentialsChanged logs, loudly, a secrets or keys file that stopped (or
// started again) giving credentials.
func (s *Server) credentialsChanged(path string, err error) {
	if err != nil {
		s.log.Error(err, "Login credentials file unusable: every event it authenticated is refused (503) until it is fixed", "file", path)
		return
	}
	s.log.Info("Login credentials file usable again", "file", path)
}

// NeedLeaderElection is false: every replica answers logins.
func (s *Server) NeedLeaderElection() bool { return false }

// Addr returns the address the server listens on, once it does.
func (s *Server) Addr(ctx context.Context) (string, error) { return listen.WaitAddr(ctx, s.addr) }

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	if s.oidc != nil {
		s.oidc.Start(ctx) // discovery and key refreshes, until ctx ends
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	return listen.Serve(ctx, srv, listen.Options{Name: "login server", BindAddress: s.opts.BindAddress, CertDir: s.opts.CertDir,
		Insecure: s.opts.Insecure, InsecureFlag: "--login-insecure", MaxConnections: MaxConnections, Log: s.log, Addr: s.addr})
}

// apiError is an error response.
type apiError struct {
	status int
	reason string
	msg    string
}

func fail(status int, reason, msg string) *apiError { return &apiError{status, reason, msg} }

// Response is the answer to an accepted (or stale) event.
type Response struct {
	UserID string                 `json:"userID"`
	Role   rolesyncv1.Role        `json:"role"`
	Denied bool                   `json:"denied"`
	Stale  bool                   `json:"stale,omitempty"`
	Source *rolesyncv1.RoleSource `json:"source,omitempty"`
	// Teams are the LiteLLM teams the RoleMappings grant (for LiteLLM's
	// custom_sso handler to pass on as team_ids for a new user); the
	// controller keeps the rosters for everyone.
	Teams []rolesyncv1.TeamMembership `json:"teams,omitempty"`
	// TeamsManaged is true when a RoleMapping of the user's issuer owns
	// teams: then Teams is the exact list of the user's memberships in
	// owned teams (possibly none), and LiteLLM's handler sets the login's
	// team_ids to it, so LiteLLM's own per-login team additions agree.
	TeamsManaged bool       `json:"teamsManaged"`
	ProxyUser    *ObjectRef `json:"proxyUser,omitempty"`
}

// ObjectRef names the ProxyUser of the event.
type ObjectRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// errorBody is the JSON of every error response.
type errorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
	UserID string `json:"userID,omitempty"`
	Denied bool   `json:"denied,omitempty"`
}

// ServeHTTP handles one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer s.opts.Priority.Enter()()
	start := s.now()
	form := FormUnknown
	resp, aerr := s.handle(r, &form)
	result := "ok"
	switch {
	case aerr != nil:
		result = aerr.reason
		body := errorBody{Error: aerr.msg, Reason: aerr.reason}
		if aerr.status == http.StatusForbidden && resp != nil {
			body.UserID, body.Denied = resp.UserID, true
			result = "denied"
		}
		if aerr.status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		if aerr.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		writeJSON(w, aerr.status, body)
	case resp.Stale:
		result = "stale"
		writeJSON(w, http.StatusOK, resp)
	default:
		writeJSON(w, http.StatusOK, resp)
	}
	eventsTotal.WithLabelValues(form, result).Inc()
	eventDuration.Observe(s.now().Sub(start).Seconds())
	if aerr != nil && aerr.status >= 500 {
		s.log.Info("Refused login event", "status", aerr.status, "reason", aerr.reason, "error", aerr.msg)
	} else {
		s.log.V(1).Info("Answered login event", "result", result)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// handle runs the steps: route, authenticate, bound, replay, evaluate,
// record. A 403 returns both a response (who was denied) and an error.
func (s *Server) handle(r *http.Request, form *string) (*Response, *apiError) {
	now := s.now()
	if !s.limiter.Allow(r.RemoteAddr, now) {
		return nil, fail(http.StatusTooManyRequests, ReasonRateLimited, "too many login events from this client")
	}
	// Wait (body unread) for one of the MaxInFlight slots: a burst of
	// logins queues briefly instead of failing; memory stays bounded.
	wait := time.NewTimer(inFlightWait)
	select {
	case s.inFlight <- struct{}{}:
		wait.Stop()
		defer func() { <-s.inFlight }()
	case <-wait.C:
		return nil, fail(http.StatusServiceUnavailable, ReasonUnavailable, "too many login events in flight; retry")
	case <-r.Context().Done():
		wait.Stop()
		return nil, fail(http.StatusServiceUnavailable, ReasonUnavailable, "the request was cancelled while waiting")
	}
	namespace, endpoint, ok := route(r.URL.EscapedPath())
	if !ok {
		return nil, fail(http.StatusNotFound, ReasonNotFound, "no such endpoint; POST /v1/namespaces/{namespace}/login-events or /v1/namespaces/{namespace}/login-tokens")
	}
	if endpoint == endpointTokens && s.oidc == nil {
		return nil, fail(http.StatusNotFound, ReasonNotFound, "login-tokens is off: the server has no --login-oidc-config")
	}
	if r.Method != http.MethodPost {
		return nil, fail(http.StatusMethodNotAllowed, ReasonMethod, "only POST is allowed")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case endpoint == endpointTokens:
		if err != nil || mt != "application/jwt" {
			return nil, fail(http.StatusUnsupportedMediaType, ReasonMediaType, "Content-Type must be application/jwt (the identity provider's ID or access token)")
		}
		*form = FormToken
	case err != nil || (mt != "application/json" && mt != "application/jwt") ||
		(mt == "application/json" && s.secrets == nil) || (mt == "application/jwt" && s.jwt == nil):
		return nil, fail(http.StatusUnsupportedMediaType, ReasonMediaType, s.mediaTypes())
	case mt == "application/json":
		*form = FormHMAC
	default:
		*form = FormJWT
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, authn.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fail(http.StatusRequestEntityTooLarge, ReasonTooLarge, fmt.Sprintf("the body is larger than %d bytes", authn.MaxBodyBytes))
		}
		return nil, fail(http.StatusBadRequest, ReasonMalformed, "the body could not be read")
	}

	var ev *authn.Event
	var aerr *apiError
	if *form == FormToken {
		ev, aerr = s.authenticateToken(r.Context(), namespace, body)
	} else {
		ev, aerr = s.authenticate(mt, namespace, r.Header.Get(authn.SignatureHeader), body, now)
	}
	if aerr != nil {
		return nil, aerr
	}
	// The namespace is part of what was signed: an event signed for one
	// namespace is never accepted for another (another replica, another path).
	switch {
	case ev.Namespace != "" && ev.Namespace != namespace:
		return nil, fail(http.StatusUnauthorized, ReasonNamespace, "the event was signed for namespace "+ev.Namespace+", not "+namespace)
	case ev.Namespace == "" && s.opts.RequireNamespace:
		return nil, fail(http.StatusUnauthorized, ReasonNamespaceRequired, "namespace: required: sign the namespace the event is for in its namespace field (--login-require-namespace)")
	}
	// The time an event claims is bound to when it was signed, so a signed
	// event cannot carry a far-future time (pinning the user against later
	// logins) or a far-past one.
	if d := ev.Time.Sub(ev.SignedAt); d > authn.MaxSkew || d < -authn.MaxSkew {
		return nil, fail(http.StatusBadRequest, ReasonInvalidField, fmt.Sprintf("time: more than %v from the signature time (t, or the JWT's iat)", authn.MaxSkew))
	}
	// Logins are ordered by a time never later than this server received
	// the event: a signed time in the future (a sender's fast clock, or a
	// forged-ahead event) cannot make the next genuine login "stale".
	ev.Time = authn.LoginTime(ev.Time, now)
	switch s.replay.Reserve(ev.ID, now) {
	case authn.Replayed:
		return nil, fail(http.StatusConflict, ReasonReplay, fmt.Sprintf("this event id was already received in the last %v", authn.ReplayWindow))
	case authn.CacheFull:
		return nil, fail(http.StatusServiceUnavailable, ReasonUnavailable, "too many recent events to check for replays")
	}
	resp, aerr := s.process(r.Context(), namespace, ev, now)
	if aerr != nil && aerr.status >= 500 {
		s.replay.Release(ev.ID) // nothing was done: the client may retry the same event
	}
	return resp, aerr
}

func (s *Server) mediaTypes() string {
	if s.secrets == nil && s.jwt == nil {
		return "login-events is off (no --login-hmac-secret-file or --login-jwt-keys-file); POST identity-provider tokens to login-tokens"
	}
	var ts []string
	if s.secrets != nil {
		ts = append(ts, "application/json with "+authn.SignatureHeader)
	}
	if s.jwt != nil {
		ts = append(ts, "application/jwt")
	}
	return "Content-Type must be " + strings.Join(ts, " or ")
}

// The two endpoints.
const (
	endpointEvents = "login-events"
	endpointTokens = "login-tokens"
)

// route returns the namespace and endpoint of
// /v1/namespaces/{namespace}/login-events or .../login-tokens.
func route(path string) (namespace, endpoint string, ok bool) {
	parts := strings.Split(path, "/")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "v1" || parts[2] != "namespaces" ||
		(parts[4] != endpointEvents && parts[4] != endpointTokens) {
		return "", "", false
	}
	if len(validation.IsDNS1123Label(parts[3])) != 0 {
		return "", "", false
	}
	return parts[3], parts[4], true
}

// authenticateToken verifies an identity provider's own token against
// that provider's keys and builds the event from what the provider signed.
func (s *Server) authenticateToken(ctx context.Context, namespace string, body []byte) (*authn.Event, *apiError) {
	ev, err := s.oidc.Verify(ctx, strings.TrimSpace(string(body)), namespace)
	switch {
	case err == nil:
		return ev, nil
	case errors.Is(err, authn.ErrNoKeys):
		return nil, fail(http.StatusServiceUnavailable, ReasonNoCredentials, "no identity-provider keys yet: the OIDC configuration is unusable or no provider has been reached")
	case errors.Is(err, authn.ErrClockSkew):
		return nil, fail(http.StatusUnauthorized, ReasonClockSkew, fmt.Sprintf("the token's iat is more than %v from now: post the token when the user logs in", authn.MaxSkew))
	case errors.Is(err, oidc.ErrNamespaceNotAllowed):
		return nil, fail(http.StatusForbidden, ReasonNamespaceNotAllowed, "the token's issuer may not record logins in namespace "+namespace+" (its namespaces list)")
	case errors.Is(err, authn.ErrBadToken):
		return nil, fail(http.StatusUnauthorized, ReasonBadToken, err.Error())
	}
	return nil, decodeFailure(err)
}

// authenticate verifies the event's signature or token, then bounds and
// decodes it.
func (s *Server) authenticate(mediaType, namespace, signature string, body []byte, now time.Time) (*authn.Event, *apiError) {
	if mediaType == "application/json" {
		secrets, err := s.secrets.Get(now, false)
		if err != nil {
			return nil, fail(http.StatusServiceUnavailable, ReasonNoCredentials, "no HMAC secrets: the secrets file is missing, empty or unparseable")
		}
		signedAt, err := authn.VerifySignatureAt(signature, body, authn.KeysFor(secrets, namespace), now)
		if err != nil {
			if errors.Is(err, authn.ErrClockSkew) {
				return nil, fail(http.StatusUnauthorized, ReasonClockSkew, err.Error())
			}
			return nil, fail(http.StatusUnauthorized, ReasonBadSignature, err.Error())
		}
		ev, err := authn.DecodeJSON(body)
		if err != nil {
			return nil, decodeFailure(err)
		}
		ev.SignedAt = signedAt
		return ev, nil
	}
	ev, err := s.jwt.Verify(strings.TrimSpace(string(body)))
	switch {
	case errors.Is(err, authn.ErrNoKeys):
		return nil, fail(http.StatusServiceUnavailable, ReasonNoCredentials, "no JWT verification keys: the keys file is missing, empty or unparseable")
	case err == nil:
		return ev, nil
	case errors.Is(err, authn.ErrClockSkew):
		return nil, fail(http.StatusUnauthorized, ReasonClockSkew, fmt.Sprintf("iat is more than %v from now", authn.MaxSkew))
	case errors.Is(err, authn.ErrBadToken):
		return nil, fail(http.StatusUnauthorized, ReasonBadToken, err.Error())
	}
	return nil, decodeFailure(err)
}

func decodeFailure(err error) *apiError {
	var fe *authn.FieldError
	if errors.As(err, &fe) {
		return fail(http.StatusBadRequest, ReasonInvalidField, fe.Error())
	}
	return fail(http.StatusBadRequest, ReasonMalformed, err.Error())
}

// process evaluates an authenticated event and records it.
func (s *Server) process(ctx context.Context, namespace string, ev *authn.Event, received time.Time) (*Response, *apiError) {
	if len(s.opts.Namespaces) > 0 && !slices.Contains(s.opts.Namespaces, namespace) {
		return nil, fail(http.StatusNotFound, ReasonNamespaceNotServed, "namespace "+namespace+" is served by another rolesync manager (this one's --watch-namespaces)")
	}
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(nsGVK)
	if err := s.client.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fail(http.StatusNotFound, ReasonNoNamespace, "namespace "+namespace+" does not exist")
		}
		return nil, unavailable(err)
	}
	loaded, err := proxyuser.MappingsLoaded(ctx, s.client, s.registry, namespace)
	if err != nil {
		return nil, unavailable(err)
	}
	if !loaded {
		return nil, fail(http.StatusServiceUnavailable, ReasonUnavailable, "the namespace's RoleMappings are still loading")
	}
	engine, _ := s.registry.Engine(namespace)

	key := proxyuser.IdentityKey(ev.Issuer, ev.UserID)
	s.locks.LockKey(key)
	defer func() { _ = s.locks.UnlockKey(key) }()

	// The replay cache is this replica's; the ProxyUsers are everyone's: a
	// login recorded by another replica, or in another namespace (an
	// identity-provider token names none), is a replay too.
	digest := authn.ReplayDigest(ev.ID)
	if elsewhere, err := s.recordedElsewhere(ctx, namespace, ev.Issuer, ev.UserID, digest, received); err != nil {
		return nil, unavailable(err)
	} else if elsewhere != "" {
		return nil, replayed("namespace " + elsewhere)
	}

	// A write that raced another replica (a conflict, or a create that
	// found the object) is redone from a live read: retry.OnError is
	// RetryOnConflict that also retries AlreadyExists.
	var resp *Response
	var aerr *apiError
	live := false
	err = retry.OnError(retry.DefaultRetry, writeRace, func() error {
		existing, err := s.findUser(ctx, namespace, ev, live)
		live = true // after a race, the cache was behind: read the apiserver
		switch {
		case errors.Is(err, errNameTaken):
			aerr = fail(http.StatusConflict, ReasonNameTaken, "ProxyUser "+proxyuser.Name(ev.Issuer, ev.UserID)+" exists for another userID or issuer; rename or delete it")
			return nil
		case err != nil:
			aerr = unavailable(err)
			return nil
		}
		if existing != nil && proxyuser.HasRecentLogin(existing, digest, received, authn.ReplayWindow) {
			aerr = replayed("this user's ProxyUser")
			return nil
		}
		var werr error
		resp, aerr, werr = s.record(ctx, namespace, ev, engine, existing, digest, received)
		return werr
	})
	if err != nil {
		return nil, fail(http.StatusServiceUnavailable, ReasonUnavailable, "the ProxyUser kept changing; retry")
	}
	return resp, aerr
}

// replayed is the answer to a login already accepted, as where names.
func replayed(where string) *apiError {
	return fail(http.StatusConflict, ReasonReplay, fmt.Sprintf("this login was already accepted in the last %v (recorded on %s)", authn.ReplayWindow, where))
}

// recordedElsewhere returns the namespace of another ProxyUser of the
// identity that recorded the login (spec.recentLogins), or "". It reads
// the cache: a replay in another namespace within the cache's delay
// (milliseconds) of the first acceptance, on another replica, can pass.
// In the same namespace the write's resourceVersion precondition closes
// that gap (a conflict re-reads the apiserver, then HasRecentLogin).
func (s *Server) recordedElsewhere(ctx context.Context, namespace, issuer, userID, digest string, now time.Time) (string, error) {
	users, err := proxyuser.IdentityMatches(ctx, s.client, proxyuser.UserIDIndex, userID)
	if err != nil {
		return "", err
	}
	for _, pu := range users {
		if pu.Spec.Issuer != issuer || pu.Spec.UserID != userID {
			continue
		}
		if pu.Namespace != namespace && proxyuser.HasRecentLogin(pu, digest, now, authn.ReplayWindow) {
			return pu.Namespace, nil
		}
	}
	return "", nil
}

// writeRace: the ProxyUser changed (or appeared) between the read and the write.
func writeRace(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }

var nsGVK = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}

// identityLocks stripes the per-identity locks of the login server.
const identityLocks = 64

// findUser finds the ProxyUser of the event's identity, whatever its name:
// from the cache's identity index, or (live) from the apiserver.
func (s *Server) findUser(ctx context.Context, namespace string, ev *authn.Event, live bool) (*rolesyncv1.ProxyUser, error) {
	found, err := proxyuser.OwnerOf(ctx, s.client, namespace, ev.Issuer, ev.UserID)
	if err != nil {
		return nil, err
	}
	if found == nil && ev.Email != "" {
		// The directory (SCIM) may have made the person's ProxyUser before
		// their first login: the login's (verified) email binds to it.
		if found, err = s.directoryUser(ctx, namespace, ev.Email); err != nil {
			return nil, err
		}
	}
	if !live {
		return found, nil
	}
	name := proxyuser.Name(ev.Issuer, ev.UserID)
	if found != nil {
		name = found.Name
	}
	pu := &rolesyncv1.ProxyUser{}
	if err := s.apiReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, pu); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	if (pu.Spec.UserID != ev.UserID || pu.Spec.Issuer != ev.Issuer) && !directoryBound(pu, ev) {
		// The derived name is taken by a ProxyUser of another identity: never
		// write this login onto it.
		return nil, errNameTaken
	}
	return pu, nil
}

// directoryUser returns the one directory-made ProxyUser of namespace
// whose email is email (ASCII case only), or nil: none, or several (the
// login then gets its own ProxyUser, never one of theirs).
func (s *Server) directoryUser(ctx context.Context, namespace, email string) (*rolesyncv1.ProxyUser, error) {
	users, err := proxyuser.ByIndex(ctx, s.client, namespace, proxyuser.EmailIndex, emailaddr.Fold(email))
	if err != nil {
		return nil, err
	}
	var found *rolesyncv1.ProxyUser
	for i := range users {
		if pu := &users[i]; pu.Spec.Directory != nil && !pu.Spec.Directory.Deleted && emailaddr.Equal(pu.Spec.Email, email) {
			if found != nil {
				return nil, nil
			}
			found = pu.DeepCopy()
		}
	}
	return found, nil
}

// directoryBound: pu is a directory user whose email is the login's.
func directoryBound(pu *rolesyncv1.ProxyUser, ev *authn.Event) bool {
	return pu.Spec.Directory != nil && ev.Email != "" && emailaddr.Equal(pu.Spec.Email, ev.Email)
}

// errNameTaken: the ProxyUser name derived for a login belongs to another user.
var errNameTaken = errors.New("the ProxyUser name of this user is taken by another user")

// record answers the event for the user found (or none), writing the
// ProxyUser. A write that raced another writer returns its error
// (writeRace): read again and redo.
func (s *Server) record(ctx context.Context, namespace string, ev *authn.Event, engine *rolemap.Engine, existing *rolesyncv1.ProxyUser,
	digest string, received time.Time) (*Response, *apiError, error) {
	resp := &Response{UserID: ev.UserID}
	in := proxyuser.Input{Namespace: namespace, Engine: engine, Issuer: ev.Issuer, Login: ev.Claims, GroupsClaim: s.opts.GroupsClaim}
	if existing != nil {
		resp.ProxyUser = &ObjectRef{Namespace: namespace, Name: existing.Name}
		if !existing.DeletionTimestamp.IsZero() {
			return nil, fail(http.StatusConflict, ReasonUserBeingDeleted, "the ProxyUser of this user is being deleted; retry later"), nil
		}
		in.Existing, in.Override, in.Stored = true, existing.Spec.RoleOverride, proxyuser.StoredClaims(existing)
		in.Directory, in.ClaimsTime, in.Now = existing.Spec.Directory, proxyuser.ClaimsTime(existing), received
		// An older login than the one recorded changes nothing.
		in.Stale = existing.Spec.LastLoginTime != nil && ev.Time.Truncate(time.Microsecond).Before(existing.Spec.LastLoginTime.Time)
	}
	d := proxyuser.Decide(in)
	res, keepStored := d.Resolution, d.KeepStored
	resp.Role, resp.Source = res.Role, res.Source
	teamClaims := ev.Claims
	if keepStored {
		teamClaims = in.Stored
	}
	var td rolemap.TeamDecision
	resp.Teams = proxyuser.Teams(in, teamClaims, res.Denied, &td)
	resp.TeamsManaged = len(td.Owners) > 0
	if in.Stale {
		resp.Stale, resp.Denied = true, res.Denied
		if res.Denied {
			return resp, fail(http.StatusForbidden, res.Reason, "login denied: this (stale) login's claims grant no role"), nil
		}
		return resp, nil, nil
	}
	if res.Denied && existing == nil {
		// Nobody to demote, and no ProxyUser for someone no mapping admits.
		resp.Denied = true
		return resp, fail(http.StatusForbidden, res.Reason, "login denied: "+res.Message), nil
	}
	var claims map[string]any
	if !keepStored {
		claims = s.reduce(ev.Claims, engine)
	}
	// A denied login of an existing user is recorded like any other (its
	// claims and time): the controller then decides from them, denies the
	// user and demotes the row. The login server writes spec only; every
	// condition has the controller as its one writer.
	var recent []rolesyncv1.LoginRecord
	if existing != nil {
		recent = existing.Spec.RecentLogins
	}
	recent = proxyuser.RecordLogin(recent, digest, received, authn.ReplayWindow)
	wrote := time.Now()
	name, err := s.write(ctx, namespace, ev, existing, claims, keepStored, recent)
	writeDuration.Observe(time.Since(wrote).Seconds())
	switch {
	case writeRace(err):
		return nil, nil, err
	case apierrors.IsInvalid(err):
		return nil, fail(http.StatusBadRequest, ReasonInvalidField, "the ProxyUser was refused: "+err.Error()), nil
	case err != nil:
		return nil, unavailable(err), nil
	}
	resp.ProxyUser = &ObjectRef{Namespace: namespace, Name: name}
	if res.Denied {
		resp.Denied = true
		if s.recorder != nil {
			s.recorder.Eventf(existing, nil, "Warning", res.Reason, "Login", "Login denied: %s", res.Message)
		}
		return resp, fail(http.StatusForbidden, res.Reason, "login denied: "+res.Message), nil
	}
	return resp, nil, nil
}

// reduce keeps the claims the namespace's mappings read or keep
// (spec.keepClaims) plus --login-keep-claims (proxyuser.StoredPaths).
func (s *Server) reduce(claims map[string]any, engine *rolemap.Engine) map[string]any {
	paths, all := proxyuser.StoredPaths(engine, s.keepClaims)
	if all {
		return claims
	}
	return proxyuser.ReduceClaims(claims, paths)
}

// write creates the ProxyUser (Create fails if another writer was first)
// or server-side applies the event's fields with the existing object's
// resourceVersion as a precondition (fails if it changed since read).
func (s *Server) write(ctx context.Context, namespace string, ev *authn.Event, existing *rolesyncv1.ProxyUser, claims map[string]any, keepClaims bool,
	recent []rolesyncv1.LoginRecord) (string, error) {
	lastLogin := metav1.NewMicroTime(ev.Time.UTC().Truncate(time.Microsecond))
	if existing == nil {
		pu := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: proxyuser.Name(ev.Issuer, ev.UserID),
			Finalizers: []string{proxyuser.Finalizer}}} // saves the controller a write
		pu.Spec = rolesyncv1.ProxyUserSpec{UserID: ev.UserID, Email: ev.Email, Issuer: ev.Issuer, LastLoginTime: &lastLogin, RecentLogins: recent}
		raw, err := json.Marshal(claims)
		if err != nil {
			return "", err
		}
		pu.Spec.Claims = &apiextensionsv1.JSON{Raw: raw}
		return pu.Name, s.client.Create(ctx, pu, client.FieldOwner(proxyuser.LoginFieldManager))
	}
	records := make([]any, len(recent))
	for i, r := range recent {
		records[i] = map[string]any{"digest": r.Digest, "receivedAt": r.ReceivedAt.Format(metav1.RFC3339Micro)}
	}
	// An existing user keeps its identity (a directory user bound by email
	// has its own userID, which is immutable); an empty issuer is filled.
	issuer := existing.Spec.Issuer
	if issuer == "" {
		issuer = ev.Issuer
	}
	spec := map[string]any{"userID": existing.Spec.UserID, "issuer": issuer, "lastLoginTime": lastLogin.Format(metav1.RFC3339Micro), "recentLogins": records}
	if ev.Email != "" {
		spec["email"] = ev.Email
	}
	if !keepClaims {
		spec["claims"] = claims
	} else if existing.Spec.Claims != nil {
		spec["claims"] = proxyuser.StoredClaims(existing) // keep owning what is there
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": rolesyncv1.GroupVersion.String(),
		"kind":       "ProxyUser",
		"metadata":   map[string]any{"name": existing.Name, "namespace": namespace, "resourceVersion": existing.ResourceVersion},
		"spec":       spec,
	}}
	return existing.Name, s.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(proxyuser.LoginFieldManager), client.ForceOwnership)
}

// unavailable maps an apiserver failure to 503 (with Retry-After).
func unavailable(err error) *apiError {
	var st apierrors.APIStatus
	if errors.As(err, &st) && !apierrors.IsServiceUnavailable(err) && !apierrors.IsTimeout(err) &&
		!apierrors.IsServerTimeout(err) && !apierrors.IsTooManyRequests(err) && !apierrors.IsInternalError(err) {
		return fail(http.StatusInternalServerError, ReasonInternal, "the apiserver refused the request: "+strconv.Quote(string(apierrors.ReasonForError(err))))
	}
	return fail(http.StatusServiceUnavailable, ReasonUnavailable, "the Kubernetes API is unavailable; retry")
}
