// Package testenv is the one bootstrap of the suites that need a real
// control plane: a kube-apiserver and etcd (envtest, from the binaries
// `make envtest` builds, at KUBEBUILDER_ASSETS) with rolesync's CRDs, an
// admin user (for kubectl and the manager binary), a client with a test-sized
// request budget, and optionally a real PostgreSQL (pgtest). Without
// KUBEBUILDER_ASSETS it fails with a message saying how to get them; it never
// skips.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rolesync/rolesync/internal/testing/pgtest"
)

// Options say what a suite needs besides the apiserver.
type Options struct {
	Scheme *runtime.Scheme
	// Webhooks are installed in the apiserver (the suite serves them).
	Webhooks envtest.WebhookInstallOptions
	// Postgres starts (or connects to) a PostgreSQL server.
	Postgres bool
}

// Env is a running control plane (and database).
type Env struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	// Admin is a system:masters user (kubeconfig and kubectl).
	Admin *envtest.AuthenticatedUser
	// Postgres is set with Options.Postgres.
	Postgres *pgtest.Server
}

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Start starts the control plane (and database). Stop it with Stop.
func Start(o Options) (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, or export KUBEBUILDER_ASSETS=$(make -s envtest)")
	}
	e := &Env{Env: &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: o.Webhooks,
	}}
	// Scale runs write hundreds of thousands of objects between the
	// apiserver's compactions: room beyond etcd's 2 GiB default quota.
	e.Env.ControlPlane.Etcd = &envtest.Etcd{}
	e.Env.ControlPlane.Etcd.Configure().Set("quota-backend-bytes", "8589934592")
	var err error
	if e.Config, err = e.Env.Start(); err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	fail := func(err error) (*Env, error) {
		_ = e.Stop()
		return nil, err
	}
	if e.Admin, err = e.Env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil); err != nil {
		return fail(fmt.Errorf("add the admin user: %w", err))
	}
	// Tests create users by the thousand: lift client-go's default 5 QPS.
	e.Config.QPS, e.Config.Burst = 1000, 2000
	if e.Client, err = client.New(e.Config, client.Options{Scheme: o.Scheme}); err != nil {
		return fail(fmt.Errorf("client: %w", err))
	}
	if o.Postgres {
		if e.Postgres, err = pgtest.Start(); err != nil {
			return fail(err)
		}
	}
	return e, nil
}

// Stop stops the database and the control plane.
func (e *Env) Stop() error {
	var errs []error
	if e.Postgres != nil {
		errs = append(errs, e.Postgres.Close())
	}
	errs = append(errs, e.Env.Stop())
	return errors.Join(errs...)
}
