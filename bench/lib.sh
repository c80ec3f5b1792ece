# bench/lib.sh: what the benchmark scripts share, sourced after they set
# BENCH_NAME (a word for temp dirs and log lines). Defines log and die, the
# temp dir WORK and OUT (BENCH_OUT), PIDS with a cleanup on exit that stops
# every process started here, stop, free_port, wait_for_port,
# install_packages and build_binaries.
# shellcheck shell=bash

log() { printf '[%s %s] %s\n' "$BENCH_NAME" "$(date +%T)" "$*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}

# install_packages PKG...: installs the Debian packages that are missing.
install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
      grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

WORK=$(mktemp -d "/tmp/campaign-gateway-$BENCH_NAME.XXXXXX")
OUT=${BENCH_OUT:-$WORK}
mkdir -p "$OUT"
PIDS=()

# Every process this script starts is in PIDS; stop them all, whatever
# happened. TERM first, then KILL what is left.
cleanup() {
  local status=$? pid alive
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.2
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ((status == 0)) || [ "$OUT" != "$WORK" ]; then
    rm -rf "$WORK"
  else
    log "logs kept in $WORK"  # a failure's evidence outlives the run
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop() {  # stop PID: ends one process started here, and waits for it.
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# A free loopback TCP port: nothing answers on it and it was not handed out
# here yet. (A race with another program makes a server fail to start, which
# is reported.)
declare -A TAKEN_PORTS=()
free_port() {
  local port
  while true; do
    port=$((20000 + RANDOM % 12000))
    [ -z "${TAKEN_PORTS[$port]:-}" ] || continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      TAKEN_PORTS[$port]=1
      echo "$port"
      return
    fi
  done
}

wait_for_port() {  # wait_for_port PORT PID NAME STDERR_FILE
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    if ! kill -0 "$2" 2>/dev/null; then
      tail -5 "$4" >&2
      die "$3 exited at start"
    fi
    sleep 0.1
  done
  die "$3 is not listening on 127.0.0.1:$1"
}


# build_binaries TARGET...: uses BUILD_DIR's binaries when it is set, else
# builds TARGETs Release into build-bench/ (sets BUILD_DIR).
build_binaries() {
  if [ -n "${BUILD_DIR:-}" ]; then
    log "using binaries in $BUILD_DIR"
    return
  fi
  BUILD_DIR=$ROOT/build-bench
  log "building Release into $BUILD_DIR"
  "$ROOT/scripts/install-deps.sh"
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_TESTING=OFF >/dev/null
  fi
  cmake --build "$BUILD_DIR" --target "$@" \
    >"$BUILD_DIR/bench-build.log" 2>&1 || {
    tail -20 "$BUILD_DIR/bench-build.log" >&2
    die "build failed (log: $BUILD_DIR/bench-build.log)"
  }
}
