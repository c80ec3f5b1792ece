#!/usr/bin/env bash
# bench/run.sh: measures campaign-gateway against nginx playing Connyline,
# driven by h2load, next to a no-upstream ceiling (bench/ceiling_server).
#
#   bench/run.sh                  full run (about 3-5 minutes)
#   BENCH_QUICK=1 bench/run.sh    smoke run (about 1 minute), e.g. for CI
#
# Environment:
#   BUILD_DIR       use the binaries already built there (default: build
#                   Release into build-bench/ first)
#   BENCH_SHARDS    --upstream_shards for the gateway; several values
#                   ("2 4 8 16") repeat scenarios a and b once per value
#   BENCH_GATEWAY_FLAGS  extra flags for every gateway instance
#   BENCH_PERF=1    record a perf profile of the gateway in scenarios a and b
#                   (perf.data files are kept in $BENCH_OUT)
#   BENCH_OUT       directory for logs and profiles (default: a temp dir that
#                   is removed at exit)
#
# Scenarios (each: a warm-up run, then a measured run):
#   a  0 ms upstream, 256 calls in flight (h2load -c 16 -m 16)
#   b  100 ms upstream, 4,096 calls in flight (h2load -c 64 -m 64)
#   c  one call at a time, through the gateway and straight to nginx
#   d  the ceiling server at 256 calls in flight
#
# It reports; it does not gate: a missed target still exits 0. It exits
# non-zero when the setup fails or any RPC did not end with grpc-status OK.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=${BENCH_QUICK:-0}
SHARDS=(${BENCH_SHARDS:-2})
EXTRA_GATEWAY_FLAGS=(${BENCH_GATEWAY_FLAGS:-})
ACCOUNT=bench
# ListListsRequest{} is empty, so the gRPC message is just its 5-byte prefix
# (not compressed, length 0).
GRPC_PATH=/campaigns.v1.CampaignService/ListLists

if ((QUICK)); then
  MEASURE_SECONDS=3   # target length of each measured run
  SERIAL_CALLS=2000   # calls in scenario c, each way
else
  MEASURE_SECONDS=12
  SERIAL_CALLS=10000
fi

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}

# --- 1. Packages and binaries ------------------------------------------------

install_packages() {
  local missing=() p
  for p in nginx libnginx-mod-http-echo nghttp2-client curl; do
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

install_packages
NGINX_ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
[ -f "$NGINX_ECHO_MODULE" ] || die "nginx echo module not found"

if [ -n "${BUILD_DIR:-}" ]; then
  log "using binaries in $BUILD_DIR"
else
  BUILD_DIR=$ROOT/build-bench
  log "building Release into $BUILD_DIR"
  "$ROOT/scripts/install-deps.sh"
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_TESTING=OFF >/dev/null
  fi
  cmake --build "$BUILD_DIR" --target campaign-gateway ceiling_server >/dev/null ||
    die "build failed (run: cmake --build $BUILD_DIR --target campaign-gateway ceiling_server)"
fi
GATEWAY=$BUILD_DIR/service/campaign-gateway
CEILING=$BUILD_DIR/bench/ceiling_server
[ -x "$GATEWAY" ] && [ -x "$CEILING" ] || die "missing $GATEWAY or $CEILING"

# --- 2. Processes, ports, cleanup ---------------------------------------------

WORK=$(mktemp -d /tmp/campaign-gateway-bench.XXXXXX)
OUT=${BENCH_OUT:-$WORK}
mkdir -p "$OUT"
PIDS=()

# Every process this script starts is in PIDS; stop them all, whatever
# happened. TERM first (the gateway drains), then KILL what is left.
cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.2
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop() {  # stop PID: ends one process started here, and waits for it.
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# 4,096 upstream connections plus the clients': raise the descriptor limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= 10000)) || die "need at least 10000 file descriptors, have $(ulimit -n)"

# A free loopback TCP port: nothing answers on it and we have not handed it
# out yet. (The race with other programs is harmless: a taken port makes the
# server fail to start, which is reported.)
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

wait_for_port() {  # wait_for_port PORT PID NAME
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited at start (logs in $OUT)"
    sleep 0.1
  done
  die "$3 is not listening on 127.0.0.1:$1"
}

# nginx plays Connyline: one worker, keep-alive, the lists answer at once on
# FAST_PORT and after 100 ms on SLOW_PORT.
start_nginx() {
  FAST_PORT=$(free_port)
  SLOW_PORT=$(free_port)
  local prefix=$WORK/nginx
  mkdir -p "$prefix/tmp"
  sed -e "s#@PREFIX@#$prefix#g" -e "s#@FAST_PORT@#$FAST_PORT#g" \
    -e "s#@SLOW_PORT@#$SLOW_PORT#g" -e "s#@ECHO_MODULE@#$NGINX_ECHO_MODULE#g" \
    "$ROOT/bench/nginx.conf.in" >"$prefix/nginx.conf"
  nginx -e "$prefix/error.log" -p "$prefix" -c "$prefix/nginx.conf" \
    -g 'daemon off;' 2>"$OUT/nginx.stderr" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  wait_for_port "$FAST_PORT" "$NGINX_PID" nginx
  wait_for_port "$SLOW_PORT" "$NGINX_PID" nginx
  local body
  body=$(curl -fsS "http://127.0.0.1:$FAST_PORT/api/v1/$ACCOUNT/lists/get-all/") ||
    die "nginx does not answer the lists path"
  [[ $body == *'"list_id":123'* ]] || die "nginx answers '$body'"
  NGINX_WORKER_PID=$(pgrep -P "$NGINX_PID" | head -1)
}

GATEWAY_HELP=$("$GATEWAY" --helpfull 2>&1 || true)
has_flag() { grep -q -- "--$1 " <<<"$GATEWAY_HELP"; }

# start_gateway UPSTREAM_PORT SHARDS: sets GW_PID, GW_PORT, GW_ADMIN.
start_gateway() {
  GW_PORT=$(free_port)
  GW_ADMIN=$(free_port)
  local flags=(
    --listen="127.0.0.1:$GW_PORT" --admin_listen="127.0.0.1:$GW_ADMIN"
    --upstream_url="http://127.0.0.1:$1" --account_code="$ACCOUNT"
    --upstream_shards="$2" --shutdown_drain=0s --shutdown_timeout=1s
  )
  # Issue 4's admission limit must not shed the 4,096-in-flight scenario.
  if has_flag max_inflight; then flags+=(--max_inflight=8192); fi
  flags+=("${EXTRA_GATEWAY_FLAGS[@]}")
  # Any 56 printable characters; nginx ignores it. stdout carries one JSON
  # line per RPC: discarded (the codes are checked in /metrics instead).
  CONNYLINE_TOKEN=$(printf 'b%.0s' $(seq 56)) "$GATEWAY" "${flags[@]}" \
    >/dev/null 2>"$OUT/gateway-$1-$2.stderr" &
  GW_PID=$!
  PIDS+=("$GW_PID")
  wait_for_port "$GW_PORT" "$GW_PID" campaign-gateway
  wait_for_port "$GW_ADMIN" "$GW_PID" "campaign-gateway admin"
  log "gateway pid $GW_PID on :$GW_PORT (admin :$GW_ADMIN) -> :$1, shards $2"
}

start_ceiling() {
  CEILING_PORT=$(free_port)
  "$CEILING" --listen="127.0.0.1:$CEILING_PORT" >"$OUT/ceiling.stdout" \
    2>"$OUT/ceiling.stderr" &
  CEILING_PID=$!
  PIDS+=("$CEILING_PID")
  wait_for_port "$CEILING_PORT" "$CEILING_PID" ceiling_server
}

# --- 3. Measuring ---------------------------------------------------------------

printf '\0\0\0\0\0' >"$WORK/request.bin"
CLK_TCK=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime
peak_mib() { awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# ListLists calls the gateway counted, by code: "OK" or "notOK".
rpc_count() {  # rpc_count ADMIN_PORT OK|notOK
  curl -fsS "http://127.0.0.1:$1/metrics" | awk -v want="$2" '
    /^campaign_gateway_rpcs_total\{/ && /method="ListLists"/ {
      ok = ($0 ~ /code="OK"/)
      if ((want == "OK") == ok) n += $NF
    }
    END { printf "%d\n", n }'
}

# h2load_run NAME URL CLIENTS STREAMS CALLS [h2load flags...]: one h2load run
# with per-request timings in $OUT/NAME.log; sets RPS, P50_MS, P99_MS, MEAN_MS.
h2load_run() {
  local name=$1 url=$2 clients=$3 streams=$4 calls=$5
  shift 5
  local out=$OUT/$name.h2load
  # Bounded: a stuck run ends the script instead of hanging CI.
  if ! timeout 180 h2load -n "$calls" -c "$clients" -m "$streams" \
    --log-file="$OUT/$name.log" "$@" "$url" >"$out" 2>&1; then
    cat "$out" >&2
    die "h2load $name failed"
  fi
  local done_ok
  done_ok=$(awk '/^requests:/ {print $8}' "$out")
  [ "$done_ok" = "$calls" ] || {
    cat "$out" >&2
    die "$name: h2load saw $done_ok of $calls calls succeed"
  }
  RPS=$(awk '/^finished in/ {print $4}' "$out")
  # Percentiles of column 3 (microseconds from request start to response end).
  read -r P50_MS P99_MS MEAN_MS < <(cut -f3 "$OUT/$name.log" | sort -n | awk '
    { v[NR] = $1; s += $1 }
    END {
      p50 = v[int(NR * 0.50) > 0 ? int(NR * 0.50) : 1]
      p99 = v[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1]
      printf "%.3f %.3f %.3f\n", p50 / 1000, p99 / 1000, s / NR / 1000
    }')
  rm -f "$OUT/$name.log"  # can be large; the figures are kept in RESULTS
}

GRPC_FLAGS=(--header 'content-type: application/grpc' --header 'te: trailers'
  -d "$WORK/request.bin")

# Calls for a measured run of about MEASURE_SECONDS at the warm-up's rate.
calls_for() {  # calls_for WARMUP_RPS MIN
  awk -v rps="$1" -v s="$MEASURE_SECONDS" -v min="$2" \
    'BEGIN { n = int(rps * s); printf "%d\n", n < min ? min : n }'
}

RESULTS=()  # rows of the figures table
FAILED_RPCS=0

# grpc_scenario LABEL PORT PID ADMIN CLIENTS STREAMS WARMUP_CALLS: warm-up,
# then a measured run; checks every call's gRPC code when ADMIN is set.
# Sets RPS P50_MS P99_MS CPU_US PEAK.
grpc_scenario() {
  local label=$1 port=$2 pid=$3 admin=$4 clients=$5 streams=$6 warmup=$7
  local url=http://127.0.0.1:$port$GRPC_PATH name=${label//[^a-zA-Z0-9]/_}
  local ok_before bad_before
  [ -z "$admin" ] || {
    ok_before=$(rpc_count "$admin" OK)
    bad_before=$(rpc_count "$admin" notOK)
  }
  log "$label: warm-up, $warmup calls"
  h2load_run "$name-warmup" "$url" "$clients" "$streams" "$warmup" "${GRPC_FLAGS[@]}"
  local calls
  calls=$(calls_for "$RPS" "$warmup")
  log "$label: measuring $calls calls (warm-up ran at $RPS req/s)"
  local perf_pid=""
  if ((${BENCH_PERF:-0})) && [ -n "$admin" ]; then
    perf record -e cpu-clock -F 499 -g -p "$pid" -o "$OUT/$name.perf.data" \
      >/dev/null 2>&1 &
    perf_pid=$!
    PIDS+=("$perf_pid")
  fi
  local ticks_before
  ticks_before=$(cpu_ticks "$pid")
  h2load_run "$name" "$url" "$clients" "$streams" "$calls" "${GRPC_FLAGS[@]}"
  local ticks=$(($(cpu_ticks "$pid") - ticks_before))
  [ -z "$perf_pid" ] || { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
  CPU_US=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$calls" \
    'BEGIN { printf "%.1f", t / hz / n * 1e6 }')
  PEAK=$(peak_mib "$pid")
  local codes="not checked"
  if [ -n "$admin" ]; then
    # h2load counts HTTP 200 even when grpc-status != 0: the gateway's own
    # counters say how each call ended.
    local ok=$(($(rpc_count "$admin" OK) - ok_before))
    local bad=$(($(rpc_count "$admin" notOK) - bad_before))
    codes="$ok OK / $((warmup + calls)) sent"
    if ((bad)); then codes+=", $bad not OK"; fi
    if ((ok != warmup + calls || bad)); then
      log "$label: $codes (see $OUT)"
      FAILED_RPCS=1
      codes="FAIL: $codes"
    fi
  fi
  log "$label: $RPS req/s, p50 $P50_MS ms, p99 $P99_MS ms, ${CPU_US} us CPU/call, peak $PEAK MiB; $codes"
  RESULTS+=("$(printf '%-34s %9s %9s %9s %9s %9s  %s' "$label" "$RPS" \
    "$P50_MS" "$P99_MS" "$CPU_US" "$PEAK" "$codes")")
}

# --- 4. The run -------------------------------------------------------------------

START=$(date +%s)
start_nginx
start_ceiling
log "nginx pid $NGINX_PID (:$FAST_PORT 0 ms, :$SLOW_PORT 100 ms), ceiling pid $CEILING_PID (:$CEILING_PORT)"
log "measured runs of ~${MEASURE_SECONDS}s; output in $OUT"

if ((QUICK)); then WARMUP_256=20000; else WARMUP_256=50000; fi

# d first-and-last would be fairer on a noisy machine; one ceiling run next
# to the first scenario a keeps the total time bounded.
grpc_scenario "d ceiling, 256 in flight" "$CEILING_PORT" "$CEILING_PID" "" \
  16 16 "$WARMUP_256"
CEIL_RPS=$RPS

declare -A A_RPS B_RPS B_P99 B_PEAK
C_DONE=0
for shards in "${SHARDS[@]}"; do
  start_gateway "$FAST_PORT" "$shards"
  grpc_scenario "a 0ms, 256 in flight, shards=$shards" "$GW_PORT" "$GW_PID" \
    "$GW_ADMIN" 16 16 "$WARMUP_256"
  A_RPS[$shards]=$RPS
  A_PEAK=$PEAK

  if ((!C_DONE)); then
    # c: one call at a time, through the gateway, then straight to nginx
    # (HTTP/1.1 keep-alive, as the gateway calls it).
    grpc_scenario "c gateway, 1 in flight" "$GW_PORT" "$GW_PID" "$GW_ADMIN" \
      1 1 "$SERIAL_CALLS"
    C_GW_P50=$P50_MS C_GW_MEAN=$MEAN_MS
    log "c nginx direct: $SERIAL_CALLS calls"
    h2load_run c_nginx_warmup "http://127.0.0.1:$FAST_PORT/api/v1/$ACCOUNT/lists/get-all/" \
      1 1 "$SERIAL_CALLS" --h1
    h2load_run c_nginx "http://127.0.0.1:$FAST_PORT/api/v1/$ACCOUNT/lists/get-all/" \
      1 1 "$SERIAL_CALLS" --h1
    C_NGINX_P50=$P50_MS
    RESULTS+=("$(printf '%-34s %9s %9s %9s %9s %9s  %s' "c nginx direct (HTTP/1.1)" \
      "$RPS" "$P50_MS" "$P99_MS" "-" "-" "HTTP 200")")
    C_ADDED=$(awk -v g="$C_GW_P50" -v n="$C_NGINX_P50" 'BEGIN { printf "%.3f", g - n }')
    C_DONE=1
  fi
  stop "$GW_PID"

  # b: a fresh gateway, so its peak memory is this scenario's.
  start_gateway "$SLOW_PORT" "$shards"
  grpc_scenario "b 100ms, 4096 in flight, shards=$shards" "$GW_PORT" "$GW_PID" \
    "$GW_ADMIN" 64 64 $((4096 * 4))
  B_RPS[$shards]=$RPS B_P99[$shards]=$P99_MS B_PEAK[$shards]=$PEAK
  stop "$GW_PID"
done

# --- 5. Report --------------------------------------------------------------------

ELAPSED=$(($(date +%s) - START))
echo
echo "campaign-gateway benchmark ($(nproc) cores; $(date -u +%FT%TZ); ${ELAPSED}s; quick=$QUICK)"
printf '%-34s %9s %9s %9s %9s %9s  %s\n' scenario "req/s" "p50 ms" "p99 ms" \
  "CPU us/op" "peak MiB" "gRPC codes"
printf '%s\n' "${RESULTS[@]}"

# verdict VALUE OP LIMIT: PASS or MISS
verdict() { awk -v v="$1" -v l="$3" -v op="$2" \
  'BEGIN { ok = op == ">=" ? v >= l : v < l; print ok ? "PASS" : "MISS" }'; }

echo
printf '%-58s %-16s %s\n' target measured verdict
for shards in "${SHARDS[@]}"; do
  ratio=$(awk -v g="${A_RPS[$shards]}" -v c="$CEIL_RPS" 'BEGIN { printf "%.2f", g / c }')
  printf '%-58s %-16s %s\n' "a (shards=$shards): gateway/ceiling req/s >= 0.50" \
    "$ratio" "$(verdict "$ratio" '>=' 0.5)"
  # 60% of Little's law (4096 / 0.1 s) or of the ceiling, whichever is lower.
  bound=$(awk -v c="$CEIL_RPS" 'BEGIN { l = 4096 / 0.1; print c < l ? c : l }')
  ratio=$(awk -v b="${B_RPS[$shards]}" -v l="$bound" 'BEGIN { printf "%.2f", b / l }')
  printf '%-58s %-16s %s\n' "b (shards=$shards): req/s / min(40960, ceiling=$CEIL_RPS) >= 0.60" \
    "$ratio" "$(verdict "$ratio" '>=' 0.6)"
  printf '%-58s %-16s %s\n' "b (shards=$shards): p99 < 250 ms" "${B_P99[$shards]} ms" \
    "$(verdict "${B_P99[$shards]}" '<' 250)"
  printf '%-58s %-16s %s\n' "b (shards=$shards): peak memory < 150 MiB" \
    "${B_PEAK[$shards]} MiB" "$(verdict "${B_PEAK[$shards]}" '<' 150)"
done
printf '%-58s %-16s %s\n' "c: added latency, p50 gateway - p50 nginx < 0.15 ms" \
  "$C_ADDED ms" "$(verdict "$C_ADDED" '<' 0.15)"
echo "(c: gateway p50 $C_GW_P50 ms, mean $C_GW_MEAN ms; nginx p50 $C_NGINX_P50 ms)"

if ((FAILED_RPCS)); then
  log "some RPCs did not end OK: see the table; logs in $OUT"
  exit 1
fi
