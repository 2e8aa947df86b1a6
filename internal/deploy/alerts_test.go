package deploy

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"sigs.k8s.io/yaml"

	"github.com/rolesync/rolesync/internal/testing/testenv"
)

// loadRules parses the PrometheusRule of config/overlays/alerts with
// Prometheus' own rule parser (what promtool check rules runs).
func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "overlays", "alerts", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Spec map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	spec, err := yaml.Marshal(obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(spec, false, model.UTF8Validation, promParser, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("the alert rules do not parse: %v", errs)
	}
	return groups
}

var promParser = parser.NewParser(parser.Options{})

// alertCase is one alert run against recorded series (promtool's
// input_series notation): it must fire at fireAt and be silent at each
// silentAt (minutes after the start).
type alertCase struct {
	series   string
	silentAt []int
	fireAt   []int
}

// TestEveryAlertFiresWhenItShould evaluates each alert of the shipped
// PrometheusRule with Prometheus' rule engine (rules.AlertingRule on a
// promqltest storage, as promtool test rules does) against recorded
// series: firing when the condition has held for its "for", silent before
// and when the condition does not hold.
func TestEveryAlertFiresWhenItShould(t *testing.T) {
	cases := map[string]alertCase{
		"RolesyncSyncFailing": {series: `load 1m
  rolesync_proxyusers_not_synced{namespace="ai",reason="SyncFailed"} 0 0 3x30
  rolesync_proxyusers_not_synced{namespace="ml",reason="WaitingForRow"} 5x30`,
			silentAt: []int{1, 5, 11}, fireAt: []int{13, 20}},
		"RolesyncDriftDetected": {series: `load 1m
  rolesync_proxyusers_drifted{namespace="ai"} 0 1x40`,
			silentAt: []int{0, 10, 15}, fireAt: []int{17, 30}},
		"RolesyncDatabaseUnreachable": {series: `load 1m
  rolesync_database_up 1 1 0x20`,
			silentAt: []int{0, 1, 5}, fireAt: []int{8, 15}},
		"RolesyncUsersWaitingForRow": {series: `load 1m
  rolesync_proxyusers_waiting_for_row_max_seconds{namespace="ai"} 0+300x40`,
			silentAt: []int{5, 12, 18}, fireAt: []int{23, 30}},
		"RolesyncRefusedLoginsSpike": {series: `load 1m
  rolesync_login_events_total{form="hmac",result="ok"} 0+600x60
  rolesync_login_events_total{form="hmac",result="InvalidSignature"} 0+1x10 10+600x50
  rolesync_login_events_total{form="hmac",result="denied"} 0+300x60`,
			silentAt: []int{5, 10, 18}, fireAt: []int{28, 40}},
		"RolesyncCompetingRoleWriter": {series: `load 1m
  rolesync_competing_writes_total 0x10 1 2 3x20
  rolesync_litellm_role_writers{setting="sso_config_role_mappings"} 0x40`,
			silentAt: []int{5, 10}, fireAt: []int{18, 25}},
		"RolesyncSCIMFailing": {series: `load 1m
  rolesync_scim_requests_total{method="PATCH",code="200"} 0+10x40
  rolesync_scim_requests_total{method="PATCH",code="503"} 0x10 0+5x30`,
			silentAt: []int{5, 12}, fireAt: []int{25, 35}},
	}
	groups := loadRules(t)
	var names []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			tc, ok := cases[r.Alert]
			if !ok {
				t.Errorf("alert %s has no case here: add one", r.Alert)
				continue
			}
			t.Run(r.Alert, func(t *testing.T) { runAlert(t, r, tc) })
		}
	}
	for name := range cases {
		if !slices.Contains(names, name) {
			t.Errorf("the rules lost alert %s", name)
		}
	}
	for _, want := range []string{"RolesyncSyncFailing", "RolesyncDriftDetected", "RolesyncDatabaseUnreachable", "RolesyncUsersWaitingForRow",
		"RolesyncRefusedLoginsSpike", "RolesyncCompetingRoleWriter", "RolesyncSCIMFailing"} {
		if !slices.Contains(names, want) {
			t.Errorf("no alert %s", want)
		}
	}
}

func runAlert(t *testing.T, r rulefmt.Rule, tc alertCase) {
	storage := promqltest.LoadedStorage(t, tc.series)
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, promqltest.DefaultMaxSamplesPerQuery)
	expr, err := promParser.ParseExpr(r.Expr)
	if err != nil {
		t.Fatal(err)
	}
	rule := rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
		labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler))
	query := rules.EngineQueryFunc(engine, storage)
	last := slices.Max(append(slices.Clone(tc.silentAt), tc.fireAt...))
	firing := map[int]bool{}
	for m := 0; m <= last; m++ { // evaluated every minute, as a rule group would be
		if _, err := rule.Eval(context.Background(), 0, time.Unix(0, 0).Add(time.Duration(m)*time.Minute), query, nil, 0); err != nil {
			t.Fatalf("minute %d: %v", m, err)
		}
		for _, a := range rule.ActiveAlerts() {
			if a.State == rules.StateFiring {
				firing[m] = true
			}
		}
	}
	for _, m := range tc.silentAt {
		if firing[m] {
			t.Errorf("fires at minute %d, where it must be silent", m)
		}
	}
	for _, m := range tc.fireAt {
		if !firing[m] {
			t.Errorf("silent at minute %d, where it must fire", m)
		}
	}
}
