#!/usr/bin/env bash
# Copies into the Helm chart what config/ generates or holds, so the chart
# and the kustomize manifests cannot drift: the CRDs, the manager's
# ClusterRole (controller-gen's) and the alert rules. Run by
# `make manifests`; hack/verify-generated.sh checks the copies.
set -euo pipefail
cd "$(dirname "$0")/.."
chart=charts/rolesync
rm -f "$chart"/crds/*.yaml
cp config/crd/bases/*.yaml "$chart/crds/"
cp config/rbac/role.yaml "$chart/files/manager-role.yaml"
cp config/overlays/alerts/prometheusrule.yaml "$chart/files/prometheusrule.yaml"
