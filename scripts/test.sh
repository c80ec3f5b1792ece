#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds (incrementally, with
# ccache) and runs every unit, integration and end-to-end test with CTest,
# then the bounded HTTP/2 attack check (scripts/dos-check.sh).
#   scripts/test.sh                  # default build in build/
#   BUILD_DIR=build-asan CMAKE_ARGS=-DSANITIZE=address,undefined scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache: paths relative to the checkout and no working directory in the
# hash, so every clone (CI's fresh one included) shares the cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
scripts/install-deps.sh
build_dir=${BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -G Ninja ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)" ${CTEST_ARGS:-}
# The HTTP/2 attacks, bounded in time, on their own (they measure RSS and
# health latency, which parallel tests or a sanitizer would distort).
case "${CMAKE_ARGS:-}${CTEST_ARGS:-}" in
  *SANITIZE* | *-R* | *-L*) ;;
  *) scripts/dos-check.sh "$build_dir" ;;
esac
