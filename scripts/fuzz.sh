#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/, clang with ASan + UBSan) and
# runs each for a short, fixed time over a copy of its seed corpus. Fails on
# any crash, sanitizer report, leak, broken invariant or slow input.
#   scripts/fuzz.sh                       # every target, 30 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh fuzz_validate
# Env: FUZZ_SECONDS (per target, default 30), BUILD_DIR (default build-fuzz).
# A failing input is kept in $BUILD_DIR/artifacts/; reproduce it with
#   $BUILD_DIR/tests/fuzz/<target> $BUILD_DIR/artifacts/<target>-crash-<sha>
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache: paths relative to the checkout and no working directory in the
# hash, so every clone (CI's fresh one included) shares the cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

seconds=${FUZZ_SECONDS:-30}
build_dir=${BUILD_DIR:-build-fuzz}
all_targets=(fuzz_list_response fuzz_create_response fuzz_error_mapping
  fuzz_validate fuzz_authz_policy)
targets=("${@:-${all_targets[@]}}")

# clang and its runtime (libFuzzer, sanitizers); tzdata for Europe/Athens.
scripts/install-deps.sh clang libclang-rt-14-dev tzdata

echo "fuzz: building ${targets[*]} in $build_dir"
CC=clang CXX=clang++ cmake -S . -B "$build_dir" -G Ninja \
  -DBUILD_FUZZERS=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build_dir" --target "${targets[@]}" -j"$(nproc)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts=$build_dir/artifacts
mkdir -p "$artifacts"

# libFuzzer's own flags set the limits; these make any report fatal and
# readable. Leak checking is on by default under libFuzzer with ASan.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
summary=()
for target in "${targets[@]}"; do
  seeds=tests/fuzz/corpus/$target
  [ -d "$seeds" ] || { echo "fuzz: no seed corpus $seeds" >&2; exit 2; }
  # New inputs go to a scratch copy, never into the repository.
  corpus=$work/$target
  cp -r "$seeds" "$corpus"
  log=$work/$target.log
  echo "fuzz: $target for ${seconds}s over $(find "$seeds" -type f | wc -l) seeds"
  rc=0
  # -timeout: any input slower than 10 s is a hang (thousands run per
  # second); -rss_limit_mb bounds memory per run of the whole process.
  "$build_dir/tests/fuzz/$target" "$corpus" \
    -max_total_time="$seconds" -max_len=16384 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$target-" >"$log" 2>&1 || rc=$?

  # Figures from libFuzzer's last status line and final stats.
  done_line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$log" | tail -1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$done_line")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$done_line")
  pcs=$(sed -nE 's/.*PC tables? \(([0-9]+) PCs\).*/\1/p' "$log" | head -1)
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log")
  rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log")
  rss=$(sed -nE 's/^stat::peak_rss_mb: *([0-9]+)/\1/p' "$log")
  line=$(printf '%-22s %9s runs %7s exec/s  cov %5s/%s edges  ft %6s  corpus %5s  rss %4s MB' \
    "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${pcs:-?}" "${ft:-?}" \
    "${corp:-?}" "${rss:-?}")
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $target FAILED (libFuzzer exit $rc); last lines of its log:" >&2
    grep -vE '^#[0-9]+|^[[:space:]]*"|^###' "$log" | tail -60 >&2
    failed+=("$target")
    line+="  FAILED (exit $rc)"
  fi
  summary+=("$line")
done

echo
echo "fuzz: results (${seconds}s per target, -max_len=16384)"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}; inputs kept in $artifacts/" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets clean"
