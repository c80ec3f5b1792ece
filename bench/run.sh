#!/usr/bin/env bash
# bench/run.sh: measures campaign-gateway against nginx playing Connyline,
# driven by h2load, next to a no-upstream ceiling (bench/ceiling_server).
#
#   bench/run.sh                  full run (about 4 minutes)
#   BENCH_QUICK=1 bench/run.sh    smoke run (under a minute), e.g. for CI
#
# Environment:
#   BUILD_DIR            use the binaries already built there (default: build
#                        Release into build-bench/ first)
#   BENCH_SHARDS         --upstream_shards values; a and b run once per value
#                        (default: "2 8", the gateway's default and the best
#                        measured; "8" with BENCH_QUICK=1)
#   BENCH_GATEWAY_FLAGS  extra flags for every gateway instance
#   BENCH_PERF=1         perf-record the gateway (DWARF call graphs) during
#                        a's and b's measured runs; use with BENCH_OUT to keep
#                        the perf.data files
#   BENCH_OUT            directory for logs and profiles (default: a temp
#                        dir, removed at exit unless the run failed)
#
# Scenarios (each: a warm-up run, then a measured run):
#   d  the ceiling: a gRPC server answering without any upstream, at 256 and
#      4,096 calls in flight and one call at a time; and, as a diagnostic,
#      the same answers finished from another thread, as the gateway does
#   a  0 ms upstream, 256 calls in flight (h2load -c 16 -m 16)
#   b  100 ms upstream, 4,096 calls in flight (h2load -c 64 -m 64)
#   c  one call at a time, through the gateway and straight to nginx,
#      alternating so that both see the same machine
#
# It reports; it does not gate: a missed target still exits 0. It exits
# non-zero when the setup fails or any RPC did not end with grpc-status OK.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
QUICK=${BENCH_QUICK:-0}
if ((QUICK)); then DEFAULT_SHARDS=8; else DEFAULT_SHARDS="2 8"; fi
read -r -a SHARDS <<<"${BENCH_SHARDS:-$DEFAULT_SHARDS}"
read -r -a EXTRA_GATEWAY_FLAGS <<<"${BENCH_GATEWAY_FLAGS:-}"
ACCOUNT=bench
GRPC_PATH=/campaigns.v1.CampaignService/ListLists

if ((QUICK)); then
  MEASURE_SECONDS=3     # target length of each measured run
  WARMUP_CALLS=20000    # warm-up calls at 256 in flight
  SERIAL_CALLS=1000     # calls per round of c, each way (3 rounds)
else
  MEASURE_SECONDS=12
  WARMUP_CALLS=50000
  SERIAL_CALLS=4000
fi

# --- 1. Packages and binaries ------------------------------------------------

install_packages nginx libnginx-mod-http-echo nghttp2-client curl
if ((${BENCH_PERF:-0})); then
  command -v perf >/dev/null || die "BENCH_PERF=1 needs perf (Debian: linux-perf)"
fi
NGINX_ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
[ -f "$NGINX_ECHO_MODULE" ] || die "nginx echo module not found"

build_binaries campaign-gateway ceiling_server
GATEWAY=$BUILD_DIR/service/campaign-gateway
CEILING=$BUILD_DIR/bench/ceiling_server
for binary in "$GATEWAY" "$CEILING"; do
  [ -x "$binary" ] || die "missing $binary"
done

# --- 2. Processes, ports, cleanup ----------------------------------------------

# 4,096 upstream connections plus the clients': raise the descriptor limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= 10000)) ||
  die "need at least 10000 file descriptors, have $(ulimit -n)"

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
  wait_for_port "$FAST_PORT" "$NGINX_PID" nginx "$OUT/nginx.stderr"
  wait_for_port "$SLOW_PORT" "$NGINX_PID" nginx "$OUT/nginx.stderr"
  local body
  body=$(curl -fsS "http://127.0.0.1:$FAST_PORT/api/v1/$ACCOUNT/lists/get-all/") ||
    die "nginx does not answer the lists path"
  [[ $body == *'"list_id":123'* ]] || die "nginx answers '$body'"
  NGINX_WORKER_PID=$(pgrep -P "$NGINX_PID" | head -1)
  [ -n "$NGINX_WORKER_PID" ] || die "no nginx worker"
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
  # nginx plays Connyline over plain HTTP (refused by default since issue 8).
  if has_flag allow_insecure_upstream; then flags+=(--allow_insecure_upstream); fi
  flags+=("${EXTRA_GATEWAY_FLAGS[@]}")
  local stderr=$OUT/gateway-$1-$2.stderr
  # Any 56 printable characters: nginx ignores the token. stdout carries one
  # JSON line per RPC; it is discarded, the codes are read from /metrics.
  CONNYLINE_TOKEN=$(printf 'b%.0s' $(seq 56)) "$GATEWAY" "${flags[@]}" \
    >/dev/null 2>"$stderr" &
  GW_PID=$!
  PIDS+=("$GW_PID")
  wait_for_port "$GW_PORT" "$GW_PID" campaign-gateway "$stderr"
  wait_for_port "$GW_ADMIN" "$GW_PID" "campaign-gateway admin" "$stderr"
  log "gateway pid $GW_PID on :$GW_PORT (admin :$GW_ADMIN) -> :$1, shards $2"
}

# start_ceiling NAME [flags]: sets CEILING_PORT and CEILING_PID.
start_ceiling() {
  local name=$1
  shift
  CEILING_PORT=$(free_port)
  "$CEILING" --listen="127.0.0.1:$CEILING_PORT" "$@" >/dev/null \
    2>"$OUT/$name.stderr" &
  CEILING_PID=$!
  PIDS+=("$CEILING_PID")
  wait_for_port "$CEILING_PORT" "$CEILING_PID" "$name" "$OUT/$name.stderr"
}

# --- 3. Measuring ---------------------------------------------------------------

# ListListsRequest{} is empty, so the gRPC message is only its 5-byte prefix
# (not compressed, length 0).
printf '\0\0\0\0\0' >"$WORK/request.bin"
GRPC_FLAGS=(--header 'content-type: application/grpc' --header 'te: trailers'
  -d "$WORK/request.bin")
CLK_TCK=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime
us_per_call() {  # us_per_call TICKS CALLS: CPU microseconds per call
  awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" \
    'BEGIN { printf "%.1f", t / hz / n * 1e6 }'
}
# Context switches of all of a process's threads. Each is a thread waiting
# or handing work to another: the cost of a call beyond its work.
ctx_switches() {
  cat "/proc/$1"/task/*/status 2>/dev/null |
    awk '/ctxt_switches/ { n += $2 } END { printf "%d\n", n }'
}
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

# h2load_run NAME URL CLIENTS STREAMS CALLS [h2load flags...]: one bounded
# h2load run; every call must succeed at the HTTP level. Keeps each call's
# microseconds (request start to response end) in $WORK/NAME.us and sets RPS.
h2load_run() {
  local name=$1 url=$2 clients=$3 streams=$4 calls=$5
  shift 5
  local out=$OUT/$name.h2load
  if ! timeout 180 h2load -n "$calls" -c "$clients" -m "$streams" \
    --log-file="$WORK/$name.log" "$@" "$url" >"$out" 2>&1; then
    tail -20 "$out" >&2
    die "h2load $name failed"
  fi
  local succeeded
  succeeded=$(awk '/^requests:/ {print $8}' "$out")
  if [ "$succeeded" != "$calls" ]; then
    tail -20 "$out" >&2
    die "$name: h2load saw $succeeded of $calls calls succeed"
  fi
  RPS=$(awk '/^finished in/ {printf "%.0f", $4}' "$out")
  cut -f3 "$WORK/$name.log" >"$WORK/$name.us"
  rm -f "$WORK/$name.log"
}

# percentiles NAME...: sets P50_MS P99_MS over the named runs' calls.
percentiles() {
  local files=() name
  for name in "$@"; do files+=("$WORK/$name.us"); done
  read -r P50_MS P99_MS < <(sort -n "${files[@]}" | awk '
    { v[NR] = $1 }
    END {
      i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
      i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
      printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000
    }')
  for name in "$@"; do rm -f "$WORK/$name.us"; done
}

# A measurement of one server process around some h2load runs:
# measure_begin PID UPSTREAM_PID|""; h2load_run...; measure_end CALLS sets
# CPU_US UPSTREAM_US CS PEAK.
measure_begin() {
  M_PID=$1 M_UPSTREAM=$2
  M_TICKS=$(cpu_ticks "$M_PID")
  M_SWITCHES=$(ctx_switches "$M_PID")
  M_UPSTREAM_TICKS=0
  [ -z "$M_UPSTREAM" ] || M_UPSTREAM_TICKS=$(cpu_ticks "$M_UPSTREAM")
}
measure_end() {  # measure_end CALLS_MEASURED
  local calls=$1
  CPU_US=$(us_per_call $(($(cpu_ticks "$M_PID") - M_TICKS)) "$calls")
  CS=$(awk -v s=$(($(ctx_switches "$M_PID") - M_SWITCHES)) -v n="$calls" \
    'BEGIN { printf "%.2f", s / n }')
  UPSTREAM_US=-
  [ -z "$M_UPSTREAM" ] || UPSTREAM_US=$(us_per_call \
    $(($(cpu_ticks "$M_UPSTREAM") - M_UPSTREAM_TICKS)) "$calls")
  PEAK=$(peak_mib "$M_PID")
}

# codes_begin ADMIN / codes_end ADMIN SENT: h2load counts HTTP 200 even when
# grpc-status != 0, so the gateway's own counters say how each call ended.
codes_begin() {
  C_OK=$(rpc_count "$1" OK)
  C_BAD=$(rpc_count "$1" notOK)
}
codes_end() {
  local ok=$(($(rpc_count "$1" OK) - C_OK)) bad=$(($(rpc_count "$1" notOK) - C_BAD))
  CODES="$ok OK of $2"
  if ((bad)); then CODES+=", $bad not OK"; fi
  if ((ok != $2 || bad)); then
    FAILED_RPCS=1
    CODES="FAIL: $CODES"
  fi
}

RESULTS=()
# One format for the table's header and rows.
# shellcheck disable=SC2059
ROW_FORMAT='%-34s %7s %8s %8s %7s %6s %7s %6s  %s'
# shellcheck disable=SC2059
row() { RESULTS+=("$(printf "$ROW_FORMAT" "$@")"); }
FAILED_RPCS=0

# Calls for a measured run of about MEASURE_SECONDS at the warm-up's rate.
calls_for() {  # calls_for WARMUP_RPS MIN
  awk -v rps="$1" -v s="$MEASURE_SECONDS" -v min="$2" \
    'BEGIN { n = int(rps * s); printf "%d\n", n < min ? min : n }'
}

# load_scenario LABEL PORT PID ADMIN|"" CLIENTS STREAMS WARMUP [UPSTREAM_PID]:
# warm-up, then a measured run of about MEASURE_SECONDS; one table row.
load_scenario() {
  local label=$1 port=$2 pid=$3 admin=$4 clients=$5 streams=$6 warmup=$7
  local upstream_pid=${8:-}
  local url=http://127.0.0.1:$port$GRPC_PATH name=${label//[^a-zA-Z0-9]/_}
  [ -z "$admin" ] || codes_begin "$admin"
  log "$label: warm-up, $warmup calls"
  h2load_run "$name-warmup" "$url" "$clients" "$streams" "$warmup" \
    "${GRPC_FLAGS[@]}"
  rm -f "$WORK/$name-warmup.us"
  local calls perf_pid=""
  calls=$(calls_for "$RPS" "$warmup")
  log "$label: measuring $calls calls (warm-up ran at $RPS req/s)"
  if ((${BENCH_PERF:-0})) && [ -n "$admin" ]; then
    # DWARF unwinding: Debian's gRPC and curl have no frame pointers.
    perf record -e cpu-clock -F 199 --call-graph dwarf,16384 -p "$pid" \
      -o "$OUT/$name.perf.data" >/dev/null 2>&1 &
    perf_pid=$!
    PIDS+=("$perf_pid")
  fi
  measure_begin "$pid" "$upstream_pid"
  h2load_run "$name" "$url" "$clients" "$streams" "$calls" "${GRPC_FLAGS[@]}"
  measure_end "$calls"
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" || true
  fi
  percentiles "$name"
  CODES="not checked"
  [ -z "$admin" ] || codes_end "$admin" $((warmup + calls))
  log "$label: $RPS req/s, p50 $P50_MS ms, p99 $P99_MS ms, $CPU_US us CPU/call (nginx $UPSTREAM_US), $CS switches/call, peak $PEAK MiB; $CODES"
  row "$label" "$RPS" "$P50_MS" "$P99_MS" "$CPU_US" "$UPSTREAM_US" "$PEAK" \
    "$CS" "$CODES"
}

# --- 4. The run -------------------------------------------------------------------

START=$(date +%s)
start_nginx
log "nginx pid $NGINX_PID (:$FAST_PORT 0 ms, :$SLOW_PORT 100 ms); runs of ~${MEASURE_SECONDS}s"

# d: the ceiling at 256 in flight (a's reference), 4,096 (b's) and 1 (what
# gRPC alone costs per round trip, for c).
start_ceiling ceiling
load_scenario "d ceiling, 256 in flight" "$CEILING_PORT" "$CEILING_PID" "" \
  16 16 "$WARMUP_CALLS"
CEIL_RPS=$RPS
load_scenario "d ceiling, 4096 in flight" "$CEILING_PORT" "$CEILING_PID" "" \
  64 64 $((4096 * 4))
CEIL_4096_RPS=$RPS
load_scenario "d ceiling, 1 in flight" "$CEILING_PORT" "$CEILING_PID" "" \
  1 1 "$SERIAL_CALLS"
C_CEIL_P50=$P50_MS
stop "$CEILING_PID"
# Diagnostic: the same answers finished from another thread, as the gateway
# finishes calls from its upstream event loops.
start_ceiling ceiling-thread --answer_from_thread
load_scenario "d' ceiling from a thread, 256" "$CEILING_PORT" "$CEILING_PID" \
  "" 16 16 "$WARMUP_CALLS"
stop "$CEILING_PID"

declare -A A_RPS B_RPS B_P99 B_PEAK
for i in "${!SHARDS[@]}"; do
  shards=${SHARDS[$i]}
  start_gateway "$FAST_PORT" "$shards"
  load_scenario "a 0ms, 256 in flight, shards=$shards" "$GW_PORT" "$GW_PID" \
    "$GW_ADMIN" 16 16 "$WARMUP_CALLS" "$NGINX_WORKER_PID"
  A_RPS[$shards]=$RPS

  if ((i == 0)); then
    # c: one call at a time through the gateway, and straight to nginx over
    # HTTP/1.1 keep-alive as the gateway calls it. Three alternating rounds,
    # pooled, so that a burst of noise on this shared machine hits both.
    gw_url=http://127.0.0.1:$GW_PORT$GRPC_PATH
    nginx_url=http://127.0.0.1:$FAST_PORT/api/v1/$ACCOUNT/lists/get-all/
    log "c: 3 alternating rounds of $SERIAL_CALLS calls each way"
    h2load_run c-warmup-gw "$gw_url" 1 1 "$SERIAL_CALLS" "${GRPC_FLAGS[@]}"
    h2load_run c-warmup-nginx "$nginx_url" 1 1 "$SERIAL_CALLS" --h1
    rm -f "$WORK"/c-warmup-*.us
    codes_begin "$GW_ADMIN"
    gw_ticks=0 gw_switches=0 nginx_rps=0 gw_rps=0
    for round in 1 2 3; do
      measure_begin "$GW_PID" ""
      h2load_run "c-gw-$round" "$gw_url" 1 1 "$SERIAL_CALLS" "${GRPC_FLAGS[@]}"
      gw_ticks=$((gw_ticks + $(cpu_ticks "$GW_PID") - M_TICKS))
      gw_switches=$((gw_switches + $(ctx_switches "$GW_PID") - M_SWITCHES))
      gw_rps=$((gw_rps + RPS))
      h2load_run "c-nginx-$round" "$nginx_url" 1 1 "$SERIAL_CALLS" --h1
      nginx_rps=$((nginx_rps + RPS))
    done
    calls=$((3 * SERIAL_CALLS))
    codes_end "$GW_ADMIN" "$calls"
    percentiles c-gw-1 c-gw-2 c-gw-3
    C_GW_P50=$P50_MS
    row "c gateway, 1 in flight" $((gw_rps / 3)) "$P50_MS" "$P99_MS" \
      "$(us_per_call "$gw_ticks" "$calls")" - "$(peak_mib "$GW_PID")" \
      "$(awk -v s="$gw_switches" -v n="$calls" 'BEGIN { printf "%.2f", s / n }')" \
      "$CODES"
    percentiles c-nginx-1 c-nginx-2 c-nginx-3
    C_NGINX_P50=$P50_MS
    row "c nginx direct (HTTP/1.1), 1" $((nginx_rps / 3)) "$P50_MS" \
      "$P99_MS" - - - - "HTTP 200"
    C_ADDED=$(awk -v g="$C_GW_P50" -v n="$C_NGINX_P50" \
      'BEGIN { printf "%.3f", g - n }')
  fi
  stop "$GW_PID"

  # b: a fresh gateway, so that its peak memory is this scenario's.
  start_gateway "$SLOW_PORT" "$shards"
  load_scenario "b 100ms, 4096 in flight, shards=$shards" "$GW_PORT" \
    "$GW_PID" "$GW_ADMIN" 64 64 $((4096 * 4)) "$NGINX_WORKER_PID"
  B_RPS[$shards]=$RPS B_P99[$shards]=$P99_MS B_PEAK[$shards]=$PEAK
  stop "$GW_PID"
done

# --- 5. Report --------------------------------------------------------------------

echo
echo "campaign-gateway benchmark: $(nproc) cores, $(date -u +%FT%TZ)," \
  "$(($(date +%s) - START)) s, quick=$QUICK, $(basename "$GATEWAY") from $BUILD_DIR"
# shellcheck disable=SC2059
printf "$ROW_FORMAT\n" scenario "req/s" "p50 ms" "p99 ms" "CPU us" nginx \
  "peak MiB" cs "gRPC codes"
printf '%s\n' "${RESULTS[@]}"
echo "CPU us: the server's CPU time per call (nginx: nginx's); cs: the server's"
echo "context switches per call; d' finishes each call from another thread."

verdict() {  # verdict VALUE OP LIMIT: PASS or MISS
  awk -v v="$1" -v l="$3" -v op="$2" \
    'BEGIN { ok = op == ">=" ? v >= l : v < l; print ok ? "PASS" : "MISS" }'
}
target() { printf '%-62s %-12s %s\n' "$1" "$2" "$(verdict "$2" "$3" "$4")"; }

# b's bound: 60% of Little's law (4096 / 0.1 s) or of the ceiling at the same
# concurrency, whichever is lower.
B_BOUND=$(awk -v c="$CEIL_4096_RPS" 'BEGIN { l = 4096 / 0.1; print c < l ? c : l }')
echo
printf '%-62s %-12s %s\n' target measured verdict
for shards in "${SHARDS[@]}"; do
  target "a shards=$shards: req/s / ceiling's ($CEIL_RPS) >= 0.50" \
    "$(awk -v g="${A_RPS[$shards]}" -v c="$CEIL_RPS" 'BEGIN { printf "%.2f", g / c }')" \
    '>=' 0.5
  target "b shards=$shards: req/s / min(40960, ceiling's $CEIL_4096_RPS) >= 0.60" \
    "$(awk -v b="${B_RPS[$shards]}" -v l="$B_BOUND" 'BEGIN { printf "%.2f", b / l }')" \
    '>=' 0.6
  target "b shards=$shards: p99 ms < 250" "${B_P99[$shards]}" '<' 250
  target "b shards=$shards: peak memory MiB < 150" "${B_PEAK[$shards]}" '<' 150
done
target "c: added latency ms, p50 gateway - p50 nginx < 0.15" "$C_ADDED" '<' 0.15
echo "(c: p50 gateway $C_GW_P50 ms, nginx $C_NGINX_P50 ms; gRPC alone, the ceiling" \
  "at 1 in flight: $C_CEIL_P50 ms)"

if ((FAILED_RPCS)); then
  log "some RPCs did not end OK: see the gRPC codes column"
  exit 1
fi
