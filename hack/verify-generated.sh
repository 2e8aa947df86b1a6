#!/usr/bin/env bash
# Fails when the generated files in the tree (deepcopy, CRDs, RBAC, webhook
# manifests) differ from what `make manifests generate` produces from the
# tree's sources. The tree is left regenerated, so a second run passes once
# the regenerated files are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
generated=(api/v1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml config/webhook/manifests.yaml
  charts/rolesync/crds charts/rolesync/files/manager-role.yaml charts/rolesync/files/prometheusrule.yaml)
snap=$(mktemp -d)
trap 'rm -rf "$snap"' EXIT
for p in "${generated[@]}"; do
  if [ -e "$p" ]; then mkdir -p "$snap/$(dirname "$p")"; cp -r "$p" "$snap/$p"; fi
done
make --no-print-directory manifests generate >/dev/null
drift=0
for p in "${generated[@]}"; do
  if [ -e "$p" ] || [ -e "$snap/$p" ]; then
    if ! diff -ru "$snap/$p" "$p" >"$snap.diff" 2>&1; then
      drift=1; echo "!! generated file out of date: $p"; head -40 "$snap.diff"
    fi
  fi
done
rm -f "$snap.diff"
if [ "$drift" = 1 ]; then
  echo "!! run 'make manifests generate' and commit the result (the tree has now been regenerated)." >&2
  exit 1
fi
echo ">> generated files are up to date"
