package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var roleWriters = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "rolesync_litellm_role_writers",
	Help: "1 when rolesync sees LiteLLM itself configured to write user roles (writer=sso_config_role_mappings: role_mappings in LiteLLM_SSOConfig); the two writers then fight.",
}, []string{"writer"})

func init() {
	metrics.Registry.MustRegister(roleWriters)
}

// RoleWriterSource tells whether LiteLLM's own settings map roles;
// *proxydb.DB implements it.
type RoleWriterSource interface {
	SSORoleMappings(ctx context.Context) (bool, error)
}

// LiteLLMWatch looks, once per period, at what rolesync can see of
// LiteLLM's own role writers (the SSO settings stored in its database) and
// reports one that is on: a log line when it turns on, and the gauge
// rolesync_litellm_role_writers. It runs on the leader only.
type LiteLLMWatch struct {
	Source RoleWriterSource
	Period time.Duration
}

// Start checks at once, then every Period, until ctx ends.
func (w *LiteLLMWatch) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("litellm-watch")
	on := false
	check := func() {
		now, err := w.Source.SSORoleMappings(ctx)
		if err != nil {
			return // the database is down: the ProxyUser controller reports that
		}
		if now && !on {
			logger.Error(nil, "LiteLLM's own SSO settings map roles (role_mappings in LiteLLM_SSOConfig): LiteLLM rewrites user_role at every login and fights rolesync; remove them in LiteLLM's admin UI (docs/operations.md, Running next to LiteLLM)")
		}
		on = now
		v := 0.0
		if on {
			v = 1
		}
		roleWriters.WithLabelValues("sso_config_role_mappings").Set(v)
	}
	check()
	t := time.NewTicker(w.Period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			check()
		}
	}
}

// NeedLeaderElection is true: one replica reports.
func (w *LiteLLMWatch) NeedLeaderElection() bool { return true }
