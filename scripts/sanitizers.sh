#!/usr/bin/env bash
# Runs the unit, integration and end-to-end tests under AddressSanitizer +
# UndefinedBehaviorSanitizer (GCC, build-asan) and under ThreadSanitizer
# (clang, build-tsan). Clean means every test passes and no process, neither
# a test binary nor a gateway or campaignctl it starts, wrote a report.
#   scripts/sanitizers.sh              # both stages
#   scripts/sanitizers.sh asan         # or: tsan
# Env: CTEST_ARGS (extra ctest arguments, e.g. "-R Curl").
# Debian's gRPC, protobuf, Abseil and curl are not instrumented. ASan and
# UBSan check our code and its calls into them. TSan needs three aids, all
# explained where they are defined, all in tests/sanitizers/: a shim
# making absl::Mutex visible (tsan_absl_shim.cc), gRPC's C++ headers left
# uninstrumented like the rest of gRPC (tsan_ignorelist.txt), and tsan.supp
# for libc calls made inside the libraries.
# None of them hides an access made by our code.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache: paths relative to the checkout and no working directory in the
# hash, so every clone (CI's fresh one included) shares the cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

stages=("${@:-asan tsan}")
read -r -a stages <<<"${stages[*]}"

# clang (and its TSan runtime) for the TSan stage.
scripts/install-deps.sh clang libclang-rt-14-dev

# Debian's absl::Mutex (also under gRPC's gpr_mu) is not instrumented, so
# TSan cannot see it synchronise and reports every access it guards as a
# race. tests/sanitizers/tsan_absl_shim.cc, preloaded, reports absl's
# acquires and releases to TSan (see its header comment).
#   build_tsan_absl_shim OUT.so
build_tsan_absl_shim() {
  "${CXX:-c++}" -std=c++20 -O1 -g -fPIC -shared -o "$1" \
    tests/sanitizers/tsan_absl_shim.cc -ldl
}

# gRPC's C++ API is partly header code (the callback reactors, CallOpSet,
# completion tags, grpc::Status), compiled into our binaries, while the
# rest of gRPC, which hands those objects between its threads, is not
# instrumented; so is libstdc++.so. TSan then reports gRPC's own accesses
# to its call objects (e.g. CallOpSet::FillOps on our thread vs
# FinalizeResult on a gRPC thread; a client call's grpc::Status strings
# written by FinishOp on a gRPC thread after the main thread built them),
# made by gRPC's header code or by the out-of-line libstdc++ template code
# (std::string, std::function) it instantiates. This list (clang only)
# leaves code defined in those headers uninstrumented, like the libraries
# they belong to. Our functions stay instrumented, including the library
# code inlined into them, and libc calls (memcpy, new/delete) are checked
# by TSan's interceptors wherever they come from.
# The list is tests/sanitizers/tsan_ignorelist.txt.

# One stage: configure, build the tests, run them, then look for reports.
#   stage NAME BUILD_DIR SANITIZE C_COMPILER CXX_COMPILER [CTEST_EXCLUDE_REGEX]
stage() {
  local name=$1 dir=$2 sanitize=$3 cc=$4 cxx=$5 exclude=${6:-}
  local reports=$PWD/$dir/sanitizer-reports
  local start=$SECONDS
  echo
  echo "=== sanitizers: $name (-fsanitize=$sanitize, $cxx) in $dir"
  # A build directory configured with another compiler cannot be reused.
  if [ -f "$dir/CMakeCache.txt" ] &&
    ! grep -q "^CMAKE_CXX_COMPILER:[A-Z]*=.*/$cxx\$" "$dir/CMakeCache.txt"; then
    rm -rf "$dir"
  fi
  mkdir -p "$dir"
  local cxx_flags=""
  if [ "$sanitize" = thread ]; then
    # Named by its content: ccache must not reuse objects built with
    # another list.
    local sum
    sum=$(sha256sum tests/sanitizers/tsan_ignorelist.txt | cut -c1-12)
    cp tests/sanitizers/tsan_ignorelist.txt "$dir/tsan_ignorelist-$sum.txt"
    cxx_flags="-fsanitize-ignorelist=$PWD/$dir/tsan_ignorelist-$sum.txt"
  fi
  # -O1 -g1: fast enough to run, line numbers in stacks, quick to compile.
  # The benchmark's server and the fuzzers are not tests.
  CC=$cc CXX=$cxx cmake -S . -B "$dir" -G Ninja -DSANITIZE="$sanitize" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS="$cxx_flags" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
    -DBUILD_TESTING=ON -DBUILD_FUZZERS=OFF -DBUILD_BENCH=OFF >/dev/null ||
    return 1
  # Every report also goes to a file (log_path), so that one from a child
  # process (the gateway under main_test) cannot pass unnoticed. Set before
  # building: gtest_discover_tests runs the binaries at build time.
  rm -rf "$reports"
  mkdir -p "$reports"
  # Only this stage's runtimes' options: clang's TSan runtime also reads
  # UBSAN_OPTIONS, whose log_path would win.
  if [ "$sanitize" = thread ]; then
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/sanitizers/tsan.supp:print_suppressions=0:log_path=$reports/tsan"
  else
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$reports/asan"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"
  fi
  # (set -e does not apply inside a function called with ||.)
  cmake --build "$dir" -j"$(nproc)" || return 1
  local build_time=$((SECONDS - start))

  local preload=""
  if [ "$sanitize" = thread ]; then
    build_tsan_absl_shim "$PWD/$dir/tsan_absl_sync.so" || return 1
    preload=$PWD/$dir/tsan_absl_sync.so
  fi

  local rc=0
  # shellcheck disable=SC2086
  LD_PRELOAD=$preload ctest --test-dir "$dir" --output-on-failure \
    -j"$(nproc)" ${exclude:+-E "$exclude"} ${CTEST_ARGS:-} || rc=$?

  local found
  found=$(find "$reports" -type f | sort)
  if [ -n "$found" ]; then
    echo "sanitizers: $name: $(wc -l <<<"$found") report(s):" >&2
    while read -r f; do
      echo "--- $f" >&2
      cat "$f" >&2
    done <<<"$found"
    rc=1
  fi
  echo "sanitizers: $name: build ${build_time}s," \
    "tests $((SECONDS - start - build_time))s," \
    "$([ "$rc" = 0 ] && echo clean || echo FAILED)"
  unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
  return "$rc"
}

failed=()
for s in "${stages[@]}"; do
  case $s in
    asan)
      stage "ASan+UBSan" build-asan address,undefined gcc g++ ||
        failed+=(asan)
      ;;
    tsan)
      # Under TSan's 5-15x slowdown, issuing 200 calls takes longer than
      # the fake's 200 ms answer, so "all 200 in flight at once" cannot
      # hold: a timing assertion, not a race check (it runs under ASan).
      stage "TSan" build-tsan thread clang clang++ \
        'GrpcServiceTest\.ManySlowCallsRunConcurrentlyNotQueued$' ||
        failed+=(tsan)
      ;;
    *)
      echo "sanitizers: unknown stage $s (asan or tsan)" >&2
      exit 2
      ;;
  esac
done
if ((${#failed[@]})); then
  echo "sanitizers: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "sanitizers: ${stages[*]} clean"
