package controllers

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/rolesync/rolesync/internal/proxydb"
)

var roleWriters = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "rolesync_litellm_role_writers",
	Help: "1 when rolesync sees LiteLLM itself configured to write user roles (writer=sso_config_role_mappings: role_mappings in LiteLLM_SSOConfig); the two writers then fight.",
}, []string{"writer"})

var (
	schemaInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rolesync_litellm_schema_info",
		Help: "1 for LiteLLM's newest applied migration as rolesync found it in the proxy database (\"\" when unknown).",
	}, []string{"migration"})
	schemaMissing = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rolesync_litellm_schema_missing_columns",
		Help: "Columns rolesync reads or writes that LiteLLM's schema lacks (or holds with another type); a missing required one stops every write.",
	})
)

func init() {
	metrics.Registry.MustRegister(roleWriters, schemaInfo, schemaMissing)
}

// RoleWriterSource tells whether LiteLLM's own settings map roles, and
// what LiteLLM's schema holds; *proxydb.DB implements it.
type RoleWriterSource interface {
	SSORoleMappings(ctx context.Context) (bool, error)
	Schema(ctx context.Context) (proxydb.SchemaReport, error)
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
	lastSchema := "-"
	check := func() {
		if rep, err := w.Source.Schema(ctx); err == nil {
			missing := make([]string, len(rep.Missing))
			for i, c := range rep.Missing {
				missing[i] = c.String()
			}
			if seen := rep.Migration + "|" + strings.Join(missing, ","); seen != lastSchema {
				lastSchema = seen
				if refused := rep.Refused(); refused != nil {
					logger.Error(refused, "Found LiteLLM's schema without columns rolesync writes", "migration", rep.Migration)
				} else {
					logger.Info("Found LiteLLM's schema", "migration", rep.Migration, "missingOptional", missing)
				}
				schemaInfo.Reset()
				schemaInfo.WithLabelValues(rep.Migration).Set(1)
				schemaMissing.Set(float64(len(rep.Missing)))
			}
		}
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
