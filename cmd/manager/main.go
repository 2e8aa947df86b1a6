// Command manager runs the rolesync operator: the RoleMapping and ProxyUser
// controllers, the RoleMapping admission webhook and the login-event server.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/controllers"
	"github.com/rolesync/rolesync/internal/cachetrim"
	"github.com/rolesync/rolesync/internal/login"
	"github.com/rolesync/rolesync/internal/priority"
	"github.com/rolesync/rolesync/internal/proxydb"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/review"
	"github.com/rolesync/rolesync/internal/rolemap"
	"github.com/rolesync/rolesync/internal/scim"
	rolesyncwebhook "github.com/rolesync/rolesync/internal/webhook"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(rolesyncv1.AddToScheme(scheme))
}

// managerOptions are the manager's own flags, with kubebuilder's names.
type managerOptions struct {
	MetricsAddr          string
	ProbeAddr            string
	PprofAddr            string
	MetricsSecure        bool
	MetricsCertDir       string
	LeaderElect          bool
	LeaderElectionID     string
	LeaderElectNamespace string
	WebhookPort          int
	WebhookCertDir       string
	MaxConcurrent        int
	KubeAPIQPS           float64
	KubeAPIBurst         int
	KubeAPICompression   bool
	WatchNamespaces      string
}

// shard returns the namespaces of --watch-namespaces (nil: every namespace).
func (o managerOptions) shard() ([]string, error) {
	var out []string
	for ns := range strings.SplitSeq(o.WatchNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns == "" {
			continue
		}
		if msgs := validation.IsDNS1123Label(ns); len(msgs) != 0 {
			return nil, fmt.Errorf("--watch-namespaces: %q is not a namespace name", ns)
		}
		out = append(out, ns)
	}
	return out, nil
}

// syncOptions configure the ProxyUser controller and its database.
type syncOptions struct {
	DatabaseURL   string
	ResyncPeriod  time.Duration
	CacheTTL      time.Duration
	DriftPolicy   string
	KeyRevocation string
	Deactivate    bool
	Brake         review.Brake
	EventRate     float64
	EventBurst    int
}

// BindFlags registers the options on fs. The database URL defaults to
// $DATABASE_URL, so it can come from a Secret without showing in the
// Pod's arguments.
func (o *syncOptions) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"),
		"PostgreSQL URL of the LiteLLM proxy database (default $DATABASE_URL). Empty runs without a database: roles are resolved into status only (Synced=Unknown).")
	fs.DurationVar(&o.ResyncPeriod, "resync-period", controllers.DefaultResyncPeriod,
		"How often (jittered by 10%) each user's database row is compared with its status.")
	fs.DurationVar(&o.CacheTTL, "litellm-cache-ttl", controllers.DefaultLiteLLMCacheTTL,
		"LiteLLM's user cache TTL (its general_settings.user_api_key_cache_ttl): a change rolesync writes is in force in LiteLLM at most this long after the write (ProxyUser status.inForceBy; 0 means the default).")
	fs.StringVar(&o.DriftPolicy, "drift-policy", string(controllers.DriftEnforce),
		"What to do when a row differs from status: Enforce (rewrite it, Event DriftCorrected) or Report (Drifted=True, no write).")
	fs.StringVar(&o.KeyRevocation, "key-revocation", string(controllers.KeyRevocationOff),
		"What a denied user (and one deleted with deletionPolicy Downgrade) loses besides the role: Block (their LiteLLM virtual keys are blocked, and unblocked when a role is granted again; only keys rolesync blocked) or Off (keys keep working).")
	fs.BoolVar(&o.Deactivate, "deactivate-denied", true,
		"Deactivate a denied user in LiteLLM the way its SCIM does (metadata.scim_active=false: LiteLLM refuses every key of the user, whatever door they use); rolesync lifts only its own deactivation when a role is granted again, also after this is turned off.")
	fs.IntVar(&o.Brake.Percent, "brake-percent", review.DefaultBrake.Percent,
		"Mass-change brake: a RoleMapping edit that would deny or demote this percentage of a namespace's users (and at least --brake-min-users) is held until the annotation rolesync.dev/confirm-generation names its generation; 0 turns the brake off.")
	fs.IntVar(&o.Brake.MinUsers, "brake-min-users", review.DefaultBrake.MinUsers,
		"Mass-change brake: the least number of denied or demoted users that holds an edit, however small the namespace.")
	fs.Float64Var(&o.EventRate, "event-rate", controllers.DefaultEventRate,
		"ProxyUser Events per second, sustained; beyond the budget Events are dropped (and counted), status still records every change.")
	fs.IntVar(&o.EventBurst, "event-burst", controllers.DefaultEventBurst, "ProxyUser Events allowed at once.")
}

// loginOptions configure the login-event server.
type loginOptions struct {
	login.Options
	keepClaims string
}

// scimOptions configure the SCIM service provider.
type scimOptions struct {
	scim.Options
	GroupsClaim string
}

// BindFlags registers the options on fs.
func (o *scimOptions) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.BindAddress, "scim-bind-address", "",
		"Address of the SCIM 2.0 service provider (tenant URL https://<host>/scim/v2/<namespace>), on a listener of its own so the identity provider's cloud can reach it while the login endpoints stay private; empty turns it off. Needs --scim-token-file; TLS from --login-cert-dir, or plain HTTP with --login-insecure.")
	fs.StringVar(&o.TokenFile, "scim-token-file", "",
		"File of SCIM bearer tokens, lines \"<namespace>: <token>\" (at least 32 bytes; several per namespace for rotation); re-read when it changes, and when it breaks every SCIM request is refused (503).")
	fs.StringVar(&o.GroupsClaim, "scim-groups-claim", proxyuser.DefaultGroupsClaim,
		"The top-level claim the directory's groups are: once a SCIM group lists a user, this claim holds the display names of the user's directory groups, whatever logins say.")
	fs.StringVar(&o.Issuer, "scim-issuer", "",
		"Issuer URL given to the ProxyUsers SCIM creates (spec.issuer): the identity provider's, so RoleMappings scoped to it apply.")
	fs.StringVar(&o.UserIDAttribute, "scim-user-id-attribute", scim.UserIDFromUserName,
		"The SCIM attribute that becomes the LiteLLM user_id (spec.userID) of a ProxyUser SCIM creates: userName or externalId. Match LiteLLM's GENERIC_USER_ID_ATTRIBUTE.")
}

// validate refuses values that can never work.
func (o *scimOptions) validate() error {
	if o.GroupsClaim == "" || strings.ContainsAny(o.GroupsClaim, ".[]\\") {
		return fmt.Errorf("--scim-groups-claim must be a top-level claim name, not %q", o.GroupsClaim)
	}
	return nil
}

// BindFlags registers the options on fs.
func (o *loginOptions) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.BindAddress, "login-bind-address", ":8443",
		"Address of the login server (POST /v1/namespaces/{namespace}/login-events and .../login-tokens); 0 turns it off. It runs when --login-hmac-secret-file, --login-jwt-keys-file or --login-oidc-config is set.")
	fs.StringVar(&o.CertDir, "login-cert-dir", "", "Directory with tls.crt and tls.key for the login server (reloaded when they change).")
	fs.BoolVar(&o.Insecure, "login-insecure", false, "Serve login events over plain HTTP (local use only; logs a warning).")
	fs.StringVar(&o.HMACSecretFile, "login-hmac-secret-file", "",
		"File of HMAC-SHA256 secrets, one per line (at least 32 bytes each), for application/json events signed in the Rolesync-Signature header; re-read when it changes, so secrets rotate.")
	fs.StringVar(&o.JWTKeysFile, "login-jwt-keys-file", "",
		"PEM public keys or a JWKS document (HMAC keys only as JWKS oct keys) for application/jwt events; re-read when it changes.")
	fs.StringVar(&o.JWTIssuer, "login-jwt-issuer", "", "Required iss of login-event JWTs.")
	fs.StringVar(&o.JWTAudience, "login-jwt-audience", "", "Required aud of login-event JWTs.")
	fs.DurationVar(&o.JWTLeeway, "login-jwt-leeway", 30*time.Second, "Clock leeway for exp/nbf/iat of login-event JWTs and identity-provider tokens (at most 60s).")
	fs.StringVar(&o.OIDCConfigFile, "login-oidc-config", "",
		"YAML file of trusted identity providers (issuers: [{url, audiences, userIDClaim, emailClaim, certificateAuthority, namespaces}]) whose own ID or access tokens are accepted at POST /v1/namespaces/{namespace}/login-tokens; keys come from each provider's OIDC discovery; re-read when it changes. See docs/integrations.md.")
	fs.StringVar(&o.keepClaims, "login-keep-claims", "",
		"Comma-separated claim paths stored on ProxyUsers besides those the namespace's RoleMappings read (e.g. name,department).")
	fs.Float64Var(&o.RateLimit, "login-rate-limit", 500,
		"Login events per second allowed per client address (0 = unlimited). One proxy sends every login of its users, so the default only stops a runaway client: it is above what the apiserver can absorb.")
	fs.IntVar(&o.RateBurst, "login-rate-burst", 1000, "Burst of login events allowed per client address.")
	fs.BoolVar(&o.RequireNamespace, "login-require-namespace", true,
		"Refuse login events (HMAC or JWT form) that do not sign a namespace field: 401 NamespaceRequired. An event that signs one is always held to it. Set false only for a sender that cannot sign one yet: its events could then be posted to any namespace its secret or key is valid for.")
}

// enabled reports whether the login server runs.
func (o *loginOptions) enabled() bool {
	return o.BindAddress != "0" && (o.HMACSecretFile != "" || o.JWTKeysFile != "" || o.OIDCConfigFile != "")
}

func (o *loginOptions) options() login.Options {
	opts := o.Options
	for k := range strings.SplitSeq(o.keepClaims, ",") {
		if k = strings.TrimSpace(k); k != "" {
			opts.KeepClaims = append(opts.KeepClaims, k)
		}
	}
	return opts
}

// validate refuses values that can never work.
func (o *syncOptions) validate() error {
	switch controllers.DriftPolicy(o.DriftPolicy) {
	case controllers.DriftEnforce, controllers.DriftReport:
	default:
		return fmt.Errorf("--drift-policy must be Enforce or Report, not %q", o.DriftPolicy)
	}
	switch controllers.KeyRevocation(o.KeyRevocation) {
	case controllers.KeyRevocationOff, controllers.KeyRevocationBlock:
	default:
		return fmt.Errorf("--key-revocation must be Block or Off, not %q", o.KeyRevocation)
	}
	if o.Brake.Percent < 0 || o.Brake.Percent > 100 || o.Brake.MinUsers < 1 {
		return fmt.Errorf("--brake-percent must be 0 to 100 and --brake-min-users at least 1, not %d and %d", o.Brake.Percent, o.Brake.MinUsers)
	}
	if o.CacheTTL < 0 {
		return fmt.Errorf("--litellm-cache-ttl must not be negative, not %s", o.CacheTTL)
	}
	if o.ResyncPeriod < time.Second {
		return fmt.Errorf("--resync-period must be at least 1s, not %s", o.ResyncPeriod)
	}
	return nil
}

// The metrics filter asks the apiserver to authenticate and authorize each scrape.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// metricsOptions serves metrics over HTTPS with authentication and
// authorization by the apiserver (as kubebuilder scaffolds it), unless
// --metrics-secure=false.
func metricsOptions(o managerOptions) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: o.MetricsAddr}
	if o.MetricsSecure {
		opts.SecureServing = true
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
		opts.CertDir = o.MetricsCertDir
		opts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }}
	}
	return opts
}

// BindFlags registers the options on fs.
func (o *managerOptions) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080",
		"Address the Prometheus metrics endpoint binds to; 0 turns metrics off.")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", true,
		"Serve metrics over HTTPS, only to callers whose bearer token the apiserver authenticates (TokenReview) and authorizes for GET /metrics (SubjectAccessReview; ClusterRole rolesync-metrics-reader). false serves plain HTTP to anyone who can reach the port.")
	fs.StringVar(&o.MetricsCertDir, "metrics-cert-dir", "",
		"Directory with tls.crt and tls.key for the metrics endpoint (reloaded when they change); empty uses a self-signed certificate generated at start.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081",
		"Address the /healthz and /readyz endpoints bind to.")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", "0",
		"Address Go's /debug/pprof endpoints bind to (heap and CPU profiles of a running manager); 0, the default, turns them off. Bind it to localhost and reach it with kubectl port-forward: profiles are not authenticated.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false,
		"Elect a leader among replicas so only one runs the controllers (the login webhook runs on every replica).")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", "rolesync.rolesync.dev",
		"Name of the Lease used for leader election.")
	fs.StringVar(&o.LeaderElectNamespace, "leader-election-namespace", "",
		"Namespace of the leader-election Lease; empty means the namespace the manager runs in.")
	fs.IntVar(&o.WebhookPort, "webhook-port", 9443,
		"Port of the admission webhook server (RoleMapping validation). ENABLE_WEBHOOKS=false in the environment turns it off.")
	fs.StringVar(&o.WebhookCertDir, "webhook-cert-dir", "",
		"Directory with tls.crt and tls.key for the admission webhook server; empty means controller-runtime's default.")
	fs.IntVar(&o.MaxConcurrent, "max-concurrent-reconciles", 4,
		"Maximum number of objects each controller reconciles at once.")
	fs.StringVar(&o.WatchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces this manager serves (a shard): it watches, reconciles and answers logins and SCIM only for them. Empty: every namespace. Give each shard its own Deployment, --leader-election-id and disjoint namespaces (docs/operations.md, \"Past one manager\").")
	fs.Float64Var(&o.KubeAPIQPS, "kube-api-qps", 50,
		"Client-side limit of requests per second to the Kubernetes API (status writes of a mass role change are bounded by it).")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", 100,
		"Burst above --kube-api-qps allowed to the Kubernetes API.")
	fs.BoolVar(&o.KubeAPICompression, "kube-api-compression", false,
		"Ask the Kubernetes API to gzip its answers, watch streams included. Off by default, as kube-controller-manager and kube-scheduler run: on a cluster's network the apiserver would compress, and the manager decompress, every watch event of every user.")
}

// configureClient sets the manager's Kubernetes API budget and whether
// it asks for gzipped answers; the login and SCIM servers' clients are
// copies of this configuration.
func (o managerOptions) configureClient(cfg *rest.Config) {
	cfg.QPS, cfg.Burst = float32(o.KubeAPIQPS), o.KubeAPIBurst
	cfg.DisableCompression = !o.KubeAPICompression
}

func main() {
	var mgrOpts managerOptions
	mgrOpts.BindFlags(flag.CommandLine)
	var syncOpts syncOptions
	syncOpts.BindFlags(flag.CommandLine)
	var loginOpts loginOptions
	loginOpts.BindFlags(flag.CommandLine)
	var scimOpts scimOptions
	scimOpts.BindFlags(flag.CommandLine)
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	if err := errors.Join(syncOpts.validate(), scimOpts.validate()); err != nil {
		log.Error(err, "Invalid flags")
		os.Exit(2)
	}
	if soft := setMemoryLimit(cgroupMemoryFiles); soft > 0 {
		log.Info("Go memory limit set from the container's (90%, less 48 MiB for the binary's code)", "bytes", soft)
	}
	restConfig := ctrl.GetConfigOrDie()
	mgrOpts.configureClient(restConfig)

	shard, err := mgrOpts.shard()
	if err != nil {
		log.Error(err, "Invalid flags")
		os.Exit(2)
	}
	cacheOpts := cache.Options{
		// The cache holds what the controllers and servers read: an object's
		// managedFields are never read (a third of a ProxyUser), and the
		// strings users repeat are held once (internal/cachetrim).
		DefaultTransform: cachetrim.Transform(),
	}
	if len(shard) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range shard {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
		log.Info("Serving a shard of namespaces", "namespaces", shard)
	}
	webhooksEnabled := os.Getenv("ENABLE_WEBHOOKS") != "false"
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Cache:                   cacheOpts,
		WebhookServer:           webhook.NewServer(webhook.Options{Port: mgrOpts.WebhookPort, CertDir: mgrOpts.WebhookCertDir}),
		Scheme:                  scheme,
		Metrics:                 metricsOptions(mgrOpts),
		HealthProbeBindAddress:  mgrOpts.ProbeAddr,
		PprofBindAddress:        mgrOpts.PprofAddr,
		LeaderElection:          mgrOpts.LeaderElect,
		LeaderElectionID:        mgrOpts.LeaderElectionID,
		LeaderElectionNamespace: mgrOpts.LeaderElectNamespace,
		// Controllers stop as soon as leadership is lost; a new leader starts fresh.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		log.Error(err, "Failed to create manager")
		os.Exit(1)
	}
	registry := rolemap.NewRegistry()
	// Logins go first: the controllers hold off new writes while one is
	// answered, and the login and SCIM servers write through clients of
	// their own (their own --kube-api-qps budget), never queued behind a
	// mass move's status writes in the manager's client.
	gate := &priority.Gate{}
	ctrlOpts := controllers.Options{
		Priority:                gate,
		Registry:                registry,
		DriftPolicy:             controllers.DriftPolicy(syncOpts.DriftPolicy),
		KeyRevocation:           controllers.KeyRevocation(syncOpts.KeyRevocation),
		KeepDeniedActive:        !syncOpts.Deactivate,
		GroupsClaim:             scimOpts.GroupsClaim,
		Brake:                   syncOpts.Brake,
		ResyncPeriod:            syncOpts.ResyncPeriod,
		LiteLLMCacheTTL:         syncOpts.CacheTTL,
		MaxConcurrentReconciles: mgrOpts.MaxConcurrent,
		EventRate:               syncOpts.EventRate,
		EventBurst:              syncOpts.EventBurst,
	}
	if syncOpts.DatabaseURL == "" {
		log.Info("No --database-url or DATABASE_URL: running without a database; roles are resolved into ProxyUser status only (Synced=Unknown, reason NoDatabase)")
	} else {
		db, err := proxydb.Open(context.Background(), syncOpts.DatabaseURL, int32(max(4, 2*mgrOpts.MaxConcurrent)))
		if err != nil {
			log.Error(err, "Failed to open the proxy database") // proxydb never echoes the URL
			os.Exit(1)
		}
		defer db.Close()
		ctrlOpts.Store = db
	}
	if err := controllers.Setup(mgr, ctrlOpts); err != nil {
		log.Error(err, "Failed to set up controllers")
		os.Exit(1)
	}
	if scimOpts.BindAddress != "" {
		o := scimOpts.Options
		o.CertDir, o.Insecure, o.RateLimit, o.RateBurst = loginOpts.CertDir, loginOpts.Insecure, loginOpts.RateLimit, loginOpts.RateBurst
		o.Namespaces = shard
		scimClient, err := ownClient(restConfig, mgr)
		if err != nil {
			log.Error(err, "Failed to create the SCIM server's client")
			os.Exit(1)
		}
		srv, err := scim.NewServer(o, scimClient, mgr.GetAPIReader(), mgr.GetEventRecorder("rolesync.dev/scim"), ctrl.Log.WithName("scim"))
		if err != nil {
			log.Error(err, "Invalid SCIM flags")
			os.Exit(2)
		}
		if err := mgr.Add(srv); err != nil {
			log.Error(err, "Failed to add the SCIM server")
			os.Exit(1)
		}
	}
	loginOpts.GroupsClaim = scimOpts.GroupsClaim
	loginOpts.Namespaces = shard
	if loginOpts.enabled() {
		loginClient, err := ownClient(restConfig, mgr)
		if err != nil {
			log.Error(err, "Failed to create the login server's client")
			os.Exit(1)
		}
		lo := loginOpts.options()
		lo.Priority = gate
		srv, err := login.NewServer(lo, loginClient, mgr.GetAPIReader(), registry,
			mgr.GetEventRecorder("rolesync.dev/login-server"), ctrl.Log.WithName("login"))
		if err != nil {
			log.Error(err, "Invalid login server flags")
			os.Exit(2)
		}
		if err := mgr.Add(srv); err != nil {
			log.Error(err, "Failed to add the login server")
			os.Exit(1)
		}
	} else {
		log.Info("The login server is off: set --login-hmac-secret-file, --login-jwt-keys-file or --login-oidc-config to run it")
	}
	if webhooksEnabled {
		if err := rolesyncwebhook.SetupRoleMappingWebhookWithManager(mgr); err != nil {
			log.Error(err, "Failed to set up webhook", "webhook", "RoleMapping")
			os.Exit(1)
		}
	} else {
		log.Info("Admission webhooks are off (ENABLE_WEBHOOKS=false): invalid RoleMappings are only refused by the controller")
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Failed to add health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "Failed to add ready check")
		os.Exit(1)
	}

	log.Info("Starting manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "Manager stopped with an error")
		os.Exit(1) //nolint:gocritic // the deferred pool close is moot at exit
	}
}

// ownClient is a client that reads from the manager's cache and writes
// with its own client-side rate limit (--kube-api-qps/--kube-api-burst of
// its own), so a server's writes never wait behind the controllers'.
func ownClient(restConfig *rest.Config, mgr ctrl.Manager) (client.Client, error) {
	c := rest.CopyConfig(restConfig)
	c.RateLimiter = nil
	return client.New(c, client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		Cache: &client.CacheOptions{Reader: mgr.GetCache()}})
}
