#!/usr/bin/env bash
# Builds the kubectl plugin (kubectl-rolesync) for each platform into
# $OUT (default dist/krew), one .tar.gz per platform holding the binary
# (version and commit stamped in), and writes $OUT/rolesync.yaml, the krew
# plugin manifest (from hack/krew/rolesync.yaml.tmpl) with each archive's
# URL and sha256. internal/deploy's tests run it and check the result.
#   hack/krew-release.sh v0.1.0
# PLATFORMS (default "linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
# windows/amd64") and BASE_URL (the release's download URL) may be set.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: hack/krew-release.sh <version, e.g. v0.1.0>}
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || { echo "version must be vMAJOR.MINOR.PATCH, not $version" >&2; exit 2; }
out=${OUT:-dist/krew}
platforms=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}
base=${BASE_URL:-https://github.com/rolesync/rolesync/releases/download/$version}
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
mkdir -p "$out"
entries=""
for p in $platforms; do
  os=${p%/*} arch=${p#*/}
  bin=kubectl-rolesync
  [ "$os" = windows ] && bin=kubectl-rolesync.exe
  stage=$(mktemp -d)
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags "-s -w -X main.version=$version -X main.commit=$commit" -o "$stage/$bin" ./cmd/rolesync
  archive=kubectl-rolesync_${version}_${os}_${arch}.tar.gz
  tar -C "$stage" -czf "$out/$archive" "$bin"
  rm -rf "$stage"
  sum=$(sha256sum "$out/$archive" | cut -d' ' -f1)
  entries+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $base/$archive
    sha256: $sum
    bin: $bin
"
done
awk -v version="$version" -v platforms="${entries%$'\n'}" '{ gsub(/\{\{VERSION\}\}/, version); if ($0 == "{{PLATFORMS}}") print platforms; else print }' \
  hack/krew/rolesync.yaml.tmpl > "$out/rolesync.yaml"
echo "$out/rolesync.yaml"
