#!/usr/bin/env bash
# Runs every fuzz target for a while (default 30s each). `make test` runs only
# their seed corpora; this explores further. New failing inputs land in the
# package's testdata/fuzz/ and become seeds once committed.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-30s}
# Packages with an envtest suite start it in TestMain (the fuzz targets live in pure packages).
KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$(hack/build-control-plane.sh)}
export KUBEBUILDER_ASSETS
for pkg in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo ">> $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
  done
done
