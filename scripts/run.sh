#!/usr/bin/env bash
# Builds the gateway (installing what it needs) and runs it. With no flags it
# runs in sandbox mode on 0.0.0.0:50051: Connyline is simulated in process and
# no SMS is ever sent. Any flag is passed on, e.g.
#   scripts/run.sh --listen 127.0.0.1:50051 --time_zone Europe/Athens
# The binary itself runs sandbox mode only when asked (--sandbox); this script
# asks for it unless an upstream URL is given (--upstream_url or
# CAMPAIGN_GATEWAY_UPSTREAM_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target campaign-gateway campaignctl
sandbox=(--sandbox)
[ -z "${CAMPAIGN_GATEWAY_UPSTREAM_URL:-}" ] || sandbox=()
for arg in "$@"; do
  case $arg in
    --upstream_url | --upstream_url=* | -upstream_url | -upstream_url=* | \
      --sandbox | --sandbox=* | --nosandbox) sandbox=() ;;
  esac
done
exec "$build_dir/service/campaign-gateway" "${sandbox[@]}" "$@"
