package controllers

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxydb"
	"github.com/rolesync/rolesync/internal/rolemap"
	"github.com/rolesync/rolesync/internal/testing/pgtest"
	"github.com/rolesync/rolesync/internal/testing/testenv"
	rolesyncwebhook "github.com/rolesync/rolesync/internal/webhook"
)

// The suite runs on a real kube-apiserver and etcd (envtest) built from
// module sources by hack/build-control-plane.sh; `make test` points
// KUBEBUILDER_ASSETS at them.
var (
	testEnv   *envtest.Environment
	admin     *envtest.AuthenticatedUser // for kubectl
	cfg       *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(rolesyncv1.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
}

// suite is the envtest control plane, PostgreSQL and the suite manager,
// started by the first test that needs them (needSuite): the tests of pure
// steps in this package run with plain `go test`.
var suite = testenv.NewSuite(startSuite)

// needSuite starts the suite if needed; a test that uses k8sClient, cfg,
// the database or the suite manager calls it first.
func needSuite(t testing.TB) {
	t.Helper()
	suite.Need(t)
}

func TestMain(m *testing.M) {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(zapLevel())))
	os.Exit(suite.Run(m, "controllers"))
}

func startSuite() (_ func(), err error) {
	var stops testenv.Stops
	defer func() {
		if err != nil {
			stops.Run()
		}
	}()
	webhooks, err := validatingWebhooks(filepath.Join("..", "config", "webhook", "manifests.yaml"))
	if err != nil {
		return nil, err
	}
	env, err := testenv.Start(testenv.Options{Scheme: scheme, Postgres: true,
		Webhooks: envtest.WebhookInstallOptions{ValidatingWebhooks: webhooks}})
	if err != nil {
		return nil, err
	}
	stops.Add(func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "controllers: stop the control plane: %v\n", err)
		}
	})
	testEnv, cfg, k8sClient, admin, pgServer = env.Env, env.Config, env.Client, env.Admin, env.Postgres
	ctx, cancel := context.WithCancel(context.Background())
	stops.Add(cancel)
	if suiteDBURL, err = pgServer.NewDatabase(ctx); err != nil {
		return nil, err
	}
	if suiteDB, err = proxydb.Open(ctx, suiteDBURL, 8); err != nil {
		return nil, err
	}
	stops.Add(suiteDB.Close)
	stopped, err := startManager(ctx)
	stops.Add(func() {
		cancel()
		<-stopped // the manager stops before the database and the control plane do
	})
	return stops.Run, err
}

const bypassLabel = "test.rolesync.dev/bypass-webhook"

// validatingWebhooks reads the generated webhook manifest and adds the
// bypass object selector.
func validatingWebhooks(path string) ([]*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	whc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := yaml.UnmarshalStrict(data, whc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(whc.Webhooks) == 0 {
		return nil, fmt.Errorf("%s: no webhooks", path)
	}
	for i := range whc.Webhooks {
		whc.Webhooks[i].ObjectSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: bypassLabel, Operator: metav1.LabelSelectorOpDoesNotExist}}}
	}
	return []*admissionregistrationv1.ValidatingWebhookConfiguration{whc}, nil
}

var (
	registry = rolemap.NewRegistry()
	pgServer *pgtest.Server
	suiteDB  *proxydb.DB // the suite manager's proxy database
	// suiteDBURL is suiteDB's URL, for tests that change rows behind rolesync's back.
	suiteDBURL string
	// cachedClient is the suite manager's client: reads come from its
	// cache, with the field indexes Setup registers.
	cachedClient client.Client
)

// suiteResync is the suite manager's resync period: short, so drift tests
// see a correction within seconds.
const suiteResync = 2 * time.Second

// ownManagerLabel marks RoleMappings and ProxyUsers that a test's own
// manager (startOperator) reconciles: the suite manager does not see them.
const ownManagerLabel = "test.rolesync.dev/own-manager"

func notOwnManaged() labels.Selector {
	req, err := labels.NewRequirement(ownManagerLabel, selection.DoesNotExist, nil)
	utilruntime.Must(err)
	return labels.NewSelector().Add(*req)
}

// startManager runs the controllers and the webhook server as the manager
// binary wires them.
func startManager(ctx context.Context) (<-chan struct{}, error) {
	stopped := make(chan struct{})
	wio := &testEnv.WebhookInstallOptions
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&rolesyncv1.RoleMapping{}: {Label: notOwnManaged()},
			&rolesyncv1.ProxyUser{}:   {Label: notOwnManaged()},
		}},
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir,
		}),
	})
	if err != nil {
		close(stopped)
		return stopped, fmt.Errorf("manager: %w", err)
	}
	cachedClient = mgr.GetClient()
	// The suite's tests share this manager and assert single Events right
	// after others emitted dozens: a budget they cannot exhaust.
	if err := Setup(mgr, Options{Registry: registry, Store: suiteDB, ResyncPeriod: suiteResync, MaxConcurrentReconciles: 4,
		EventRate: 1000, EventBurst: 10000}); err != nil {
		close(stopped)
		return stopped, err
	}
	if err := rolesyncwebhook.SetupRoleMappingWebhookWithManager(mgr); err != nil {
		close(stopped)
		return stopped, err
	}
	go func() {
		defer close(stopped)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "controllers: manager stopped: %v\n", err)
		}
	}()
	// Wait until the webhook server answers.
	addr := net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort))
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test dial to our own server
		if err == nil {
			_ = conn.Close()
			return stopped, nil
		}
		if time.Now().After(deadline) {
			return stopped, fmt.Errorf("webhook server at %s did not come up: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startOperator runs a manager of its own for one namespace, wired by
// Setup with o, until the test ends. Objects it should own carry
// ownManagerLabel so the suite manager leaves them alone.
func startOperator(t testing.TB, namespace string, o Options) (stop func()) {
	t.Helper()
	if o.Registry == nil {
		o.Registry = rolemap.NewRegistry()
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 operatorLogger(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{namespace: {}}},
		Controller:             ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	if err := Setup(mgr, o); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager of %s stopped: %v", namespace, err)
		}
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, 50*time.Millisecond, cond, nil)
}

// operatorLogger is the logger of a test's own manager: silent unless
// ROLESYNC_TEST_VERBOSE is set, since fault tests make it log thousands of
// expected errors.
func operatorLogger() logr.Logger {
	if os.Getenv("ROLESYNC_TEST_VERBOSE") != "" {
		return logf.Log
	}
	return logr.Discard()
}

func zapLevel() zapcore.Level {
	if os.Getenv("ROLESYNC_TEST_VERBOSE") != "" {
		return -2
	}
	return 2 // errors only
}

// newNamespace creates a namespace unique to the test.
func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{}
	ns.GenerateName = "test-"
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

func readAll(r io.Reader) string {
	if r == nil {
		return ""
	}
	b, _ := io.ReadAll(r)
	return string(b)
}

func reqFor(obj client.Object) ctrl.Request {
	return ctrl.Request{NamespacedName: client.ObjectKeyFromObject(obj)}
}
