#!/usr/bin/env bash
# Lints and compiles the public API with buf (pinned in scripts/tools):
#   buf lint   STANDARD rules on proto/ (proto/buf.yaml; the google/ and grpc/
#              copies of upstream protos are excluded)
#   buf build  the module compiles (imports resolve, no duplicate symbols)
# Exits non-zero on any finding. CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || { echo "check-proto: node is required" >&2; exit 1; }
tools=scripts/tools
stamp=$tools/node_modules/.installed-lock
if ! cmp -s "$tools/package-lock.json" "$stamp" 2>/dev/null; then
  echo "check-proto: npm ci --prefix $tools"
  timeout 600 npm ci --prefix "$tools" --no-audit --no-fund --loglevel=error >/dev/null
  cp "$tools/package-lock.json" "$stamp"
fi
buf=$PWD/$tools/node_modules/.bin/buf
# buf's cache (no network is needed: the module has no remote dependencies).
export BUF_CACHE_DIR=${BUF_CACHE_DIR:-$PWD/.cache/buf}

cd proto
echo "buf $("$buf" --version) in proto/ (config: proto/buf.yaml)"
echo "files linted:"
timeout 120 "$buf" ls-files | sed 's/^/  /'
echo "\$ buf lint"
timeout 120 "$buf" lint --error-format=text
echo "\$ buf build"
timeout 120 "$buf" build -o /dev/null
echo "check-proto: OK (buf lint STANDARD, buf build)"
