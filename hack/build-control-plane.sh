#!/usr/bin/env bash
# Builds the real control plane used by tests and `make demo` -- kube-apiserver,
# etcd and kubectl -- from the pinned module sources in hack/tools, into a
# per-machine cache outside the repository, keyed by version. Binaries already
# in the cache are reused. Prints the cache directory (KUBEBUILDER_ASSETS) on
# its last line of stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=v1.37.2
cache_root=${ROLESYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rolesync}
dir="$cache_root/k8s/$version"
mkdir -p "$dir"

build() {
  local name=$1 pkg=$2
  if [ -x "$dir/$name" ]; then
    echo ">> $name: cached in $dir" >&2
    return
  fi
  echo ">> building $name from $pkg (cold builds take minutes: kube-apiserver ~9 min on 2 cores)..." >&2
  local start=$SECONDS tmp
  tmp=$(mktemp "$dir/.$name.XXXXXX")
  (cd "$here/tools" && go build -trimpath -ldflags='-s -w' -o "$tmp" "$pkg") || { rm -f "$tmp"; echo "!! building $name failed" >&2; exit 1; }
  chmod +x "$tmp"
  mv -f "$tmp" "$dir/$name"
  echo ">> $name built in $((SECONDS - start))s" >&2
}

build etcd ./etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl
echo "$dir"
