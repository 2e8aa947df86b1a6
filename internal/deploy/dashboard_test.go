package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	// The packages whose metrics the manager registers (as cmd/manager
	// imports them).
	_ "github.com/rolesync/rolesync/controllers"
	_ "github.com/rolesync/rolesync/internal/login"
	_ "github.com/rolesync/rolesync/internal/proxydb"
	_ "github.com/rolesync/rolesync/internal/scim"

	"github.com/rolesync/rolesync/internal/testing/testenv"
)

var fqName = regexp.MustCompile(`fqName: "([a-zA-Z_:][a-zA-Z0-9_:]*)"`)

// exported returns every metric name the manager's registry describes
// (controller-runtime's and rolesync's), with the series names of
// histograms and summaries.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	c, ok := metrics.Registry.(prometheus.Collector)
	if !ok {
		t.Fatalf("controller-runtime's registry is a %T, not a collector", metrics.Registry)
	}
	ch := make(chan *prometheus.Desc, 1024)
	go func() { c.Describe(ch); close(ch) }()
	names := map[string]bool{}
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				names[m[1]+suffix] = true
			}
		}
	}
	if !names["rolesync_login_events_total"] || !names["controller_runtime_reconcile_errors_total"] {
		t.Fatalf("the registry lacks the manager's metrics (%d names): the test lost its point", len(names))
	}
	return names
}

// metricNames parses a PromQL expression and returns the metrics it reads.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	// Grafana's variables, as Grafana substitutes them.
	expr = strings.NewReplacer("$__rate_interval", "5m", "$namespace", ".*").Replace(expr)
	e, err := promParser.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%q does not parse: %v", expr, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// TestDashboardQueriesExportedMetrics: every metric the Grafana dashboard
// queries is one the manager exports, and the dashboard shows logins,
// users by role, sync errors, convergence and database latency.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "charts", "rolesync", "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	have := exported(t)
	var queried []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range metricNames(t, tg.Expr) {
				if !have[name] {
					t.Errorf("panel %q queries %s, which the manager does not export", p.Title, name)
				}
				queried = append(queried, name)
			}
		}
	}
	for _, want := range []string{"rolesync_login_events_total", "rolesync_login_event_duration_seconds_bucket", "rolesync_proxyusers",
		"rolesync_proxyusers_not_synced", "rolesync_role_changes_total", "rolesync_database_query_duration_seconds_bucket"} {
		if !slices.Contains(queried, want) {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

// TestAlertsQueryExportedMetrics: the alert rules read only metrics the
// manager exports (an alert on a renamed metric would never fire).
func TestAlertsQueryExportedMetrics(t *testing.T) {
	have := exported(t)
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			for _, name := range metricNames(t, r.Expr) {
				if !have[name] {
					t.Errorf("alert %s reads %s, which the manager does not export", r.Alert, name)
				}
			}
		}
	}
}
