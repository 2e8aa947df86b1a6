// Command manager runs the rolesync operator: the RoleMapping and ProxyUser
// controllers, the RoleMapping admission webhook and the login-event server.
package main

import (
	"flag"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/controllers"
	"github.com/rolesync/rolesync/internal/rolemap"
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
	LeaderElect          bool
	LeaderElectionID     string
	LeaderElectNamespace string
	WebhookPort          int
	WebhookCertDir       string
	MaxConcurrent        int
}

// BindFlags registers the options on fs.
func (o *managerOptions) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080",
		"Address the Prometheus metrics endpoint binds to; 0 turns metrics off.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081",
		"Address the /healthz and /readyz endpoints bind to.")
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
}

func main() {
	var mgrOpts managerOptions
	mgrOpts.BindFlags(flag.CommandLine)
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	webhooksEnabled := os.Getenv("ENABLE_WEBHOOKS") != "false"
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		WebhookServer:           webhook.NewServer(webhook.Options{Port: mgrOpts.WebhookPort, CertDir: mgrOpts.WebhookCertDir}),
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: mgrOpts.MetricsAddr},
		HealthProbeBindAddress:  mgrOpts.ProbeAddr,
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
	if err := (&controllers.RoleMappingReconciler{
		Client:                  mgr.GetClient(),
		Registry:                registry,
		MaxConcurrentReconciles: mgrOpts.MaxConcurrent,
	}).SetupWithManager(mgr); err != nil {
		log.Error(err, "Failed to set up controller", "controller", "RoleMapping")
		os.Exit(1)
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
		os.Exit(1)
	}
}
