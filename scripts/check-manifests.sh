#!/usr/bin/env bash
# Renders every kustomization under deploy/ (the base and each overlay) with
# `kubectl kustomize` and validates every rendered object offline against the
# Kubernetes schemas (scripts/tools/validate-manifests.mjs: kubernetes-models
# JSON schemas, unknown-field check, and the project's own rules). Prints the
# kind/name list per rendering; exits non-zero on any problem. CI runs it.
# Kustomize Components (kind: Component, e.g. deploy/components/redis) cannot be
# rendered alone; they are skipped and checked through the overlays using them.
#   scripts/check-manifests.sh [deploy/overlays/NAME ...]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kubectl >/dev/null; then   # on the CI image; else Debian-style apt repos that carry it
  echo "check-manifests: installing kubectl"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 \
      $sudo apt-get install -y -qq --no-install-recommends kubectl >/dev/null; } ||
    { echo "check-manifests: kubectl (with kustomize) is required" >&2; exit 1; }
fi
command -v node >/dev/null || { echo "check-manifests: node is required" >&2; exit 1; }

# The pinned npm tools (package-lock.json); reinstalled only when the lock changes.
tools=scripts/tools
stamp=$tools/node_modules/.installed-lock
if ! cmp -s "$tools/package-lock.json" "$stamp" 2>/dev/null; then
  echo "check-manifests: npm ci --prefix $tools"
  timeout 600 npm ci --prefix "$tools" --no-audit --no-fund --loglevel=error >/dev/null
  cp "$tools/package-lock.json" "$stamp"
fi

if (($#)); then
  dirs=("$@")
else
  mapfile -t dirs < <(find deploy -name kustomization.yaml -printf '%h\n' | sort)
fi
((${#dirs[@]})) || { echo "check-manifests: no kustomization under deploy/" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
streams=()
for dir in "${dirs[@]}"; do
  if grep -Eq '^kind:[[:space:]]*Component[[:space:]]*$' "$dir/kustomization.yaml" 2>/dev/null; then
    echo "(skip $dir: a kustomize Component, rendered through the overlays that include it)"
    continue
  fi
  name=${dir#deploy/}
  name=${name#overlays/}
  file="$out/${name//\//_}.yaml"
  echo "\$ kubectl kustomize $dir"
  timeout 120 kubectl kustomize "$dir" >"$file"
  streams+=("$name=$file")
done
((${#streams[@]})) || { echo "check-manifests: nothing to render (only Components)" >&2; exit 1; }
echo
timeout 300 node "$tools/validate-manifests.mjs" "${streams[@]}"
