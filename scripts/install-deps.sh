#!/usr/bin/env bash
# Installs the Debian packages the gateway needs to build, test and run.
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libcurl4-openssl-dev nlohmann-json3-dev libabsl-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev ca-certificates tzdata
  libhiredis-dev redis-server
  # HTTP/2 and HTTPS upstreams of curl_transport_test.
  nghttp2-server nginx libnginx-mod-http-echo
  python3-h2  # scripts/h2_attack.py (scripts/dos-check.sh)
  # The client guide's Python example, run by a test (docs/clients.md).
  python3-grpcio python3-protobuf
)
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
