#!/usr/bin/env bash
# Fails when a file tracked by git is a compiled binary (ELF, Mach-O, PE, a Go
# archive) or larger than 1 MiB: build outputs belong in bin/ or the machine
# cache, never in the repository. A real fixture that must be large or binary
# is named in ALLOW below, with the reason beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((1024 * 1024))
ALLOW=(
  # (none today)
)
allowed() {
  local f=$1 a
  for a in "${ALLOW[@]}"; do [ "$f" = "$a" ] && return 0; done
  return 1
}
bad=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue # deleted in the work tree
  allowed "$f" && continue
  size=$(stat -c %s "$f")
  if [ "$size" -gt "$limit" ]; then
    echo "!! tracked file over 1 MiB: $f ($size bytes)"; bad=1; continue
  fi
  magic=$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')
  case "$magic" in
    7f454c46*) kind="ELF executable" ;;
    cffaedfe*|cefaedfe*|feedface*|feedfacf*|cafebabe*) kind="Mach-O executable" ;;
    4d5a*) kind="PE executable" ;;
    213c6172*) kind="ar archive (Go package archive)" ;;
    *) kind="" ;;
  esac
  if [ -n "$kind" ]; then echo "!! tracked compiled binary: $f ($kind)"; bad=1; fi
done < <(git ls-files -z)
if [ "$bad" = 1 ]; then
  echo "!! remove build outputs from git (git rm --cached FILE) and add them to .gitignore, or allow a real fixture in hack/verify-tracked-files.sh" >&2
  exit 1
fi
echo ">> no tracked binaries or files over 1 MiB"
