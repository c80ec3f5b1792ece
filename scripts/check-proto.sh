#!/usr/bin/env bash
# Lints and compiles the public API with buf (pinned in scripts/tools):
#   buf lint   STANDARD rules on proto/ (proto/buf.yaml; the google/ and grpc/
#              copies of upstream protos are excluded)
#   buf build  the module compiles (imports resolve, no duplicate symbols)
#   buf breaking  no change breaks the last release (FILE rules): against
#              the committed image proto/baseline/v1.0.0.binpb (a clean CI
#              clone may have no tags) and, when the clone has one, the
#              newest v* tag; then proves the check bites: a deliberately
#              breaking change to a copy must fail it
#   google/rpc/*.proto are byte-identical to Google's published files (npm
#              google-proto-files, pinned in scripts/tools), options included
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

# Google's files as published, so every language's googleapis common protos
# (com.google.rpc.*, errdetails, ...) interoperate with ours.
for f in status.proto error_details.proto; do
  if ! cmp -s "$tools/node_modules/google-proto-files/google/rpc/$f" \
       "proto/google/rpc/$f"; then
    echo "check-proto: proto/google/rpc/$f differs from Google's published" \
      "file (npm google-proto-files)" >&2
    exit 1
  fi
done
echo "proto/google/rpc/{status,error_details}.proto: identical to Google's" \
  "(google-proto-files $(node -p "require('./$tools/node_modules/google-proto-files/package.json').version"))"

cd proto
echo "buf $("$buf" --version) in proto/ (config: proto/buf.yaml)"
echo "files linted:"
timeout 120 "$buf" ls-files | sed 's/^/  /'
echo "\$ buf lint"
timeout 120 "$buf" lint --error-format=text
echo "\$ buf build"
timeout 120 "$buf" build -o /dev/null

# The last release's API. A new release writes its image here
# (buf build -o baseline/vX.Y.Z.binpb) and points `baseline` at it.
baseline=baseline/v1.0.0.binpb
echo "\$ buf breaking --against $baseline"
timeout 120 "$buf" breaking --against "$baseline" --error-format=text
tag=$(git tag -l 'v*' --sort=-v:refname | head -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -n $tag ]]; then
  git -C .. archive "$tag" proto | tar -x -C "$work"
  echo "\$ buf breaking --against (tag $tag)/proto"
  timeout 120 "$buf" breaking --against "$work/proto" --error-format=text
  rm -rf "$work/proto"
else
  echo "(no v* tag in this clone: the committed image is the baseline)"
fi

# The check must bite: renumber a field in a copy and expect a failure.
cp -r . "$work/breaking"
sed -i 's/string shortlink1 = 8;/string shortlink1 = 18;/' \
  "$work/breaking/campaigns/v1/campaign_service.proto"
grep -q 'shortlink1 = 18;' "$work/breaking/campaigns/v1/campaign_service.proto"
if out=$(cd "$work/breaking" && timeout 120 "$buf" breaking \
           --against "$PWD/$baseline" --error-format=text 2>&1); then
  echo "check-proto: buf breaking accepted a renumbered field" >&2
  exit 1
fi
grep -q 'shortlink1' <<<"$out" || {
  echo "check-proto: buf breaking failed, but not on the change: $out" >&2
  exit 1
}
echo "buf breaking rejects a deliberately breaking change, as it should:"
sed 's/^/  /' <<<"$out" | head -n 3

# buf curl through reflection, as README shows it, against the sandbox.
cd ..
log=$(mktemp)
scripts/run.sh --listen=127.0.0.1:0 --admin_listen= >"$log" 2>&1 &
gateway=$!
trap 'kill "$gateway" 2>/dev/null; wait "$gateway" 2>/dev/null; rm -rf "$log" "$work"' EXIT
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
echo "check-proto: OK (buf lint STANDARD, buf build, buf breaking, buf curl via reflection)"
