#!/usr/bin/env bash
# Lints and compiles the public API with buf (pinned in scripts/tools):
#   buf lint   STANDARD rules on proto/ (proto/buf.yaml; the google/ and grpc/
#              copies of upstream protos are excluded)
#   buf build  the module compiles (imports resolve, no duplicate symbols)
#   buf curl   README's example works: the sandbox gateway (scripts/run.sh,
#              building it if needed) is called through server reflection,
#              Health/Check and CampaignService/ListLists
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

# buf curl through reflection, as README shows it, against the sandbox.
cd ..
log=$(mktemp)
scripts/run.sh --listen=127.0.0.1:0 --admin_listen= >"$log" 2>&1 &
gateway=$!
trap 'kill "$gateway" 2>/dev/null; wait "$gateway" 2>/dev/null; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 600); do  # run.sh may have to build the binary first
  port=$(grep -o '"msg":"listening".*"port":[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  [ -n "$port" ] && break
  kill -0 "$gateway" 2>/dev/null || break
  sleep 0.5
done
[ -n "$port" ] || { echo "check-proto: the sandbox gateway did not start:" >&2; cat "$log" >&2; exit 1; }
curl_grpc() {  # <expected substring> <method> [buf curl flags]
  local expected=$1 method=$2 out
  shift 2
  echo "\$ buf curl --protocol grpc --http2-prior-knowledge $* http://127.0.0.1:$port/$method"
  out=$(timeout 60 "$buf" curl --protocol grpc --http2-prior-knowledge "$@" \
    "http://127.0.0.1:$port/$method")
  grep -qF -- "$expected" <<<"$out" ||
    { echo "check-proto: expected '$expected' in:" >&2; echo "$out" >&2; exit 1; }
}
curl_grpc '"status": "SERVING"' grpc.health.v1.Health/Check
curl_grpc '"status": "SERVING"' grpc.health.v1.Health/Check \
  -d '{"service": "campaigns.v1.CampaignService"}'
curl_grpc '"name": "2026 Clients"' campaigns.v1.CampaignService/ListLists
echo "check-proto: OK (buf lint STANDARD, buf build, buf curl via reflection)"
