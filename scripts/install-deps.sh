#!/usr/bin/env bash
# Installs the Debian packages the gateway needs to build, test and run.
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail

# libcurl from bookworm-backports (an official Debian suite): against 7.88 it
# multiplexes HTTP/2 on ~40 instead of ~700 connections, spends ~8% less CPU
# per call and speaks h2c (README "Performance", bench/README.md). An apt pin
# takes exactly these three packages from there (curl, the command, must move
# with libcurl4), at 8.14.1 or whichever newer upload replaces it there (the
# suite keeps only its newest); their dependencies stay bookworm's.
CURL_MIN_VERSION=8.14.1
curl_packages=(libcurl4 libcurl4-openssl-dev curl)

packages=(libcurl4 libcurl4-openssl-dev curl)

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  nlohmann-json3-dev libabsl-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev ca-certificates tzdata
  libhiredis-dev redis-server
  libgoogle-perftools-dev  # tcmalloc_minimal, campaign-gateway's allocator
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
  state=$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null || true)
  [[ $state == "install ok installed "* ]] &&
    dpkg --compare-versions "${state##* }" ge "$CURL_MIN_VERSION" ||
    missing_curl+=("$p")
done
if ((${#missing[@]} + ${#missing_curl[@]})); then
  echo "install-deps: installing ${missing[*]} ${missing_curl[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  if ((${#missing_curl[@]})); then
    # Backports are never chosen by default (priority 100); the pin raises
    # only curl's three packages there.
    grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/ ||
      printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' \
        'Suites: bookworm-backports' 'Components: main' \
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' |
      $sudo tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
    printf '%s\n' "Package: ${curl_packages[*]}" \
      'Pin: release n=bookworm-backports' 'Pin-Priority: 990' |
      $sudo tee /etc/apt/preferences.d/campaign-gateway-curl >/dev/null
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" "${missing_curl[@]}" >/dev/null
fi
