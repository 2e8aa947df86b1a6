// Package deploy holds no code: its tests check what rolesync ships beside
// the binary — the Helm chart (charts/rolesync) against config/, the alert
// rules against Prometheus' rule engine, the Grafana dashboard against the
// metrics the manager exports, and the krew plugin manifest.
package deploy
