#!/usr/bin/env bash
# Installs the Debian packages the gateway needs to build, test and run.
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail

# libcurl from bookworm-backports (an official Debian suite), pinned: against
# 7.88 it spends ~10% less CPU per call, multiplexes HTTP/2 on 33 instead of
# ~1,000 connections and speaks h2c (README "Performance", bench/README.md).
# curl, the command, must move with libcurl4: it requires the same version.
CURL_VERSION=8.14.1-2+deb13u2~bpo13+1
curl_packages=(libcurl4 libcurl4-openssl-dev curl)

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  nlohmann-json3-dev libabsl-dev
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
missing_curl=()
for p in "${curl_packages[@]}"; do
  [ "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null)" = "$CURL_VERSION" ] ||
    missing_curl+=("$p=$CURL_VERSION")
done
if ((${#missing[@]} + ${#missing_curl[@]})); then
  echo "install-deps: installing ${missing[*]} ${missing_curl[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  backports=/etc/apt/sources.list.d/bookworm-backports.sources
  if ((${#missing_curl[@]})) && [ ! -f "$backports" ]; then
    # Backports are never chosen by default (priority 100): only the
    # versions pinned here come from there, their dependencies from bookworm.
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' \
      'Suites: bookworm-backports' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' |
      $sudo tee "$backports" >/dev/null
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" "${missing_curl[@]}" >/dev/null
fi
