package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/rolesync/rolesync/internal/listen"
	"github.com/rolesync/rolesync/internal/login/authn"
	"github.com/rolesync/rolesync/internal/proxyuser"
)

// Options configure the SCIM service provider; cmd/manager binds them to
// flags.
type Options struct {
	// BindAddress is --scim-bind-address; the server is off without it.
	BindAddress string
	// CertDir holds tls.crt and tls.key (the login server's, --login-cert-dir).
	CertDir string
	// Insecure serves plain HTTP (--login-insecure; local tests only).
	Insecure bool
	// TokenFile is --scim-token-file: "<namespace>: <bearer token>" lines.
	TokenFile string
	// Issuer is the issuer URL of the directory's users (--scim-issuer):
	// spec.issuer of the ProxyUsers SCIM creates, so RoleMappings scoped to
	// the identity provider apply to them.
	Issuer string
	// UserIDAttribute is the SCIM attribute that becomes spec.userID (the
	// LiteLLM user_id) of a ProxyUser SCIM creates: userName (default) or
	// externalId (--scim-user-id-attribute).
	UserIDAttribute string
	// RateLimit and RateBurst bound requests per client address, as the
	// login endpoints' (0: unlimited).
	RateLimit float64
	RateBurst int
	// Namespaces are the namespaces this manager serves (--watch-namespaces;
	// nil: all); other tenants answer 404.
	Namespaces []string
	// Workers bounds the ProxyUser writes one group change makes at once
	// (default 16).
	Workers int
}

// The values of Options.UserIDAttribute.
const (
	UserIDFromUserName   = "userName"
	UserIDFromExternalID = "externalId"
)

// Bounds.
const (
	// MaxBodyBytes bounds a request body (413 beyond).
	MaxBodyBytes = 1 << 20
	// MaxResults is the most resources one list page holds.
	MaxResults = 200
	// maxInFlight bounds the requests handled at once.
	maxInFlight = 32
)

var requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "rolesync_scim_requests_total",
	Help: "SCIM requests by method and HTTP status code.",
}, []string{"method", "code"})

func init() { metrics.Registry.MustRegister(requestsTotal) }

// +kubebuilder:rbac:groups=rolesync.dev,resources=proxyusers,verbs=get;list;watch;create;patch;update
// +kubebuilder:rbac:groups=rolesync.dev,resources=directorygroups,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Server is the SCIM service provider. It runs on every replica; every
// write is optimistic (a resourceVersion precondition), so replicas never
// lose each other's changes.
type Server struct {
	opts      Options
	client    client.Client
	apiReader client.Reader
	recorder  events.EventRecorder
	log       logr.Logger
	tokens    *authn.FileSource[Tokens]
	limiter   *authn.ClientLimiter
	protocol  elimity.Server
	inFlight  chan struct{}
	events    *rate.Limiter // Events budget
	addr      chan string
	now       func() time.Time
}

// NewServer checks the options and reads the tokens file.
func NewServer(o Options, c client.Client, apiReader client.Reader, recorder events.EventRecorder, log logr.Logger) (*Server, error) {
	if o.TokenFile == "" {
		return nil, errors.New("scim: --scim-token-file is required with --scim-bind-address")
	}
	if !o.Insecure && o.CertDir == "" {
		return nil, errors.New("scim: set --login-cert-dir (tls.crt, tls.key), or --login-insecure for local use")
	}
	switch o.UserIDAttribute {
	case "":
		o.UserIDAttribute = UserIDFromUserName
	case UserIDFromUserName, UserIDFromExternalID:
	default:
		return nil, fmt.Errorf("scim: --scim-user-id-attribute must be %s or %s, not %q", UserIDFromUserName, UserIDFromExternalID, o.UserIDAttribute)
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	s := &Server{opts: o, client: c, apiReader: apiReader, recorder: recorder, log: log, now: time.Now,
		limiter: authn.NewClientLimiter(o.RateLimit, o.RateBurst), inFlight: make(chan struct{}, maxInFlight), addr: make(chan string, 1),
		events: rate.NewLimiter(eventRate, eventBurst)}
	tokens, err := authn.NewFileSource(o.TokenFile, ParseTokens, func(path string, err error) {
		if err != nil {
			log.Error(err, "SCIM token file unusable: every SCIM request is refused (503) until it is fixed", "file", path)
			return
		}
		log.Info("SCIM token file usable again", "file", path)
	})
	if err != nil {
		return nil, fmt.Errorf("scim: --scim-token-file: %w", err)
	}
	s.tokens = tokens
	// Entra ID sends booleans (and numbers) as strings ("True", "False"):
	// the library then parses them as their type. Process-wide, and only
	// this package uses the library.
	schema.SetAllowStringValues(true)
	users, groups := &userHandler{s: s}, &groupHandler{s: s}
	s.protocol, err = elimity.NewServer(&elimity.ServerArgs{
		ServiceProviderConfig: &elimity.ServiceProviderConfig{
			DocumentationURI: optional.NewString("https://github.com/rolesync/rolesync/blob/main/docs/scim.md"),
			AuthenticationSchemes: []elimity.AuthenticationScheme{{Type: elimity.AuthenticationTypeOauthBearerToken, Name: "Bearer token",
				Description: "A token of the namespace from rolesync's --scim-token-file", Primary: true}},
			MaxResults: MaxResults, SupportFiltering: true, SupportPatch: true,
		},
		ResourceTypes: []elimity.ResourceType{
			{ID: optional.NewString("User"), Name: "User", Endpoint: "/Users", Description: optional.NewString("A person: the namespace's ProxyUser"),
				Schema: schema.CoreUserSchema(), SchemaExtensions: []elimity.SchemaExtension{{Schema: schema.ExtensionEnterpriseUser()}}, Handler: users},
			{ID: optional.NewString("Group"), Name: "Group", Endpoint: "/Groups", Description: optional.NewString("A directory group: a DirectoryGroup"),
				Schema: schema.CoreGroupSchema(), Handler: groups},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("scim: %w", err)
	}
	return s, nil
}

// NeedLeaderElection is false: every replica answers.
func (s *Server) NeedLeaderElection() bool { return false }

// Addr returns the address the server listens on, once it does.
func (s *Server) Addr(ctx context.Context) (string, error) { return listen.WaitAddr(ctx, s.addr) }

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	// A group change writes every member it adds or removes before it
	// answers: 10,000 members take minutes on a busy apiserver.
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 15 * time.Minute, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
	return listen.Serve(ctx, srv, listen.Options{Name: "SCIM server", BindAddress: s.opts.BindAddress, CertDir: s.opts.CertDir,
		Insecure: s.opts.Insecure, InsecureFlag: "--login-insecure", MaxConnections: 256, Log: s.log, Addr: s.addr})
}

// nsKey carries the tenant namespace of a request.
type nsKey struct{}

func namespaceOf(r *http.Request) string { ns, _ := r.Context().Value(nsKey{}).(string); return ns }

// codeWriter records the status written.
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (c *codeWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *codeWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return c.ResponseWriter.Write(b)
}

// ServeHTTP routes /scim/v2/<namespace>/... to the protocol handler after
// authenticating, bounding and rate-limiting the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := &codeWriter{ResponseWriter: w}
	s.serve(cw, r)
	requestsTotal.WithLabelValues(r.Method, strconv.Itoa(cw.code)).Inc()
	if cw.code >= 500 {
		s.log.Info("SCIM request failed", "method", r.Method, "code", cw.code) // never the token or the body
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !s.limiter.Allow(r.RemoteAddr, s.now()) {
		writeError(w, http.StatusTooManyRequests, "", "too many SCIM requests from this client")
		return
	}
	select {
	case s.inFlight <- struct{}{}:
		defer func() { <-s.inFlight }()
	case <-r.Context().Done():
		return
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/scim/v2/")
	if !ok {
		writeError(w, http.StatusNotFound, "", "no such endpoint: the tenant URL is /scim/v2/<namespace>")
		return
	}
	namespace, path, _ := strings.Cut(rest, "/")
	if len(validation.IsDNS1123Label(namespace)) != 0 {
		writeError(w, http.StatusNotFound, "", "no such endpoint: the tenant URL is /scim/v2/<namespace>")
		return
	}
	tokens, err := s.tokens.Get(s.now(), false)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "", "no SCIM tokens: the token file is missing, empty or unparseable")
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !tokens.Allows(namespace, []byte(strings.TrimSpace(token))) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rolesync-scim"`)
		writeError(w, http.StatusUnauthorized, "", "a bearer token of this namespace is required")
		return
	}
	if r.ContentLength > MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes))
		return
	}
	if r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalidSyntax", "the body could not be read")
			return
		}
		if len(body) > MaxBodyBytes {
			writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if len(s.opts.Namespaces) > 0 && !slices.Contains(s.opts.Namespaces, namespace) {
		writeError(w, http.StatusNotFound, "", "namespace "+namespace+" is served by another rolesync manager (--watch-namespaces)")
		return
	}
	if err := s.namespaceExists(r.Context(), namespace); err != nil {
		writeError(w, http.StatusNotFound, "", "namespace "+namespace+" does not exist")
		return
	}
	r2 := r.Clone(context.WithValue(r.Context(), nsKey{}, namespace))
	r2.URL.Path = "/v2/" + path
	r2.URL.RawPath = ""
	if unescaped, err := url.PathUnescape(path); err == nil {
		r2.URL.Path = "/v2/" + unescaped
	}
	s.protocol.ServeHTTP(w, r2)
}

// writeError answers with the SCIM error schema (RFC 7644 3.12).
func writeError(w http.ResponseWriter, status int, scimType, detail string) {
	body := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"}, "status": strconv.Itoa(status), "detail": detail}
	if scimType != "" {
		body["scimType"] = scimType
	}
	w.Header().Set("Content-Type", "application/scim+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// fieldManager is the field manager of every SCIM write.
var fieldManager = client.FieldOwner(proxyuser.SCIMFieldManager)
