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
#   BENCH_SHARDS         --upstream_shards values; a, b, e and f run once per
#                        value (default: "8", the gateway's default)
#   BENCH_CURLS          gateway variants, side by side in one run (default:
#                        "system bookworm glibc"): system is the gateway as
#                        built (libcurl 8.14.1 pinned by install-deps.sh,
#                        tcmalloc); bookworm runs it on Debian 12's own
#                        libcurl4 (7.88.1) and backports on bookworm-
#                        backports' (to try another version): downloaded with
#                        apt-get download, unpacked in the temp dir and
#                        loaded with LD_LIBRARY_PATH (libcurl.so.4 is ABI
#                        compatible); glibc is campaign-gateway-glibc, the
#                        same gateway on glibc's malloc
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
#      alternating so that both see the same machine; once on the fresh
#      gateway and once after a (the target uses the latter)
#   e  HTTPS upstream (nginx, ECDSA P-256 certificate from a CA made here,
#      --upstream_ca_file) speaking HTTP/1.1 only, 100 ms, 4,096 in flight
#   f  the same HTTPS upstream offering HTTP/2 by ALPN
#   a, b, c, e and f run once per libcurl (BENCH_CURLS), each with a fresh
#   gateway; every gateway row counts the upstream connections nginx
#   accepted (stub_status) and, for e and f, the TLS handshakes that were
#   full or resumed ($ssl_session_reused in nginx's log).
#
# It reports; it does not gate: a missed target still exits 0. It exits
# non-zero when the setup fails or any RPC did not end with grpc-status OK.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
QUICK=${BENCH_QUICK:-0}
read -r -a SHARDS <<<"${BENCH_SHARDS:-8}"
read -r -a CURLS <<<"${BENCH_CURLS:-system bookworm glibc}"
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

install_packages nginx libnginx-mod-http-echo nghttp2-client curl openssl
if ((${BENCH_PERF:-0})); then
  command -v perf >/dev/null || die "BENCH_PERF=1 needs perf (Debian: linux-perf)"
fi
NGINX_ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
[ -f "$NGINX_ECHO_MODULE" ] || die "nginx echo module not found"

build_binaries campaign-gateway campaign-gateway-glibc ceiling_server
GATEWAY=$BUILD_DIR/service/campaign-gateway
GATEWAY_GLIBC=$BUILD_DIR/bench/campaign-gateway-glibc
CEILING=$BUILD_DIR/bench/ceiling_server
for binary in "$GATEWAY" "$GATEWAY_GLIBC" "$CEILING"; do
  [ -x "$binary" ] || die "missing $binary"
done

# A libcurl4 from a Debian suite, unpacked into WORK, without touching the
# system's apt sources or packages: a private sources list and lists dir.
BACKPORTS_CURL_VERSION=${BENCH_BACKPORTS_CURL:-8.14.1-2+deb13u2~bpo13+1}
BOOKWORM_CURL_VERSION=${BENCH_BOOKWORM_CURL:-7.88.1-10+deb12u15}
fetch_curl() {  # fetch_curl NAME SUITE VERSION: sets CURL_LIBDIR[NAME]
  local name=$1 suite=$2 version=$3
  local dir=$WORK/curl-$name
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/root"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
    "http://deb.debian.org/debian $suite main" >"$dir/sources.list"
  local apt_opts=(-o "Dir::Etc::sourcelist=$dir/sources.list"
    -o Dir::Etc::sourceparts=- -o "Dir::State::lists=$dir/lists"
    -o "Dir::Cache=$dir/cache" -o APT::Get::List-Cleanup=0)
  log "downloading libcurl4=$version from $suite"
  (cd "$dir" && apt-get "${apt_opts[@]}" update -qq >/dev/null 2>&1 &&
    apt-get "${apt_opts[@]}" download -qq \
      "libcurl4=$version" >/dev/null 2>&1) ||
    die "cannot download libcurl4=$version from $suite"
  dpkg -x "$dir"/libcurl4_*.deb "$dir/root"
  CURL_LIBDIR[$name]=$dir/root/usr/lib/x86_64-linux-gnu
  [ -f "${CURL_LIBDIR[$name]}/libcurl.so.4" ] || die "no libcurl.so.4 in the package"
}
declare -A CURL_LIBDIR=([system]="" [glibc]="")
for curl in "${CURLS[@]}"; do
  case $curl in
    system | glibc) ;;
    backports) fetch_curl backports bookworm-backports "$BACKPORTS_CURL_VERSION" ;;
    bookworm) fetch_curl bookworm bookworm "$BOOKWORM_CURL_VERSION" ;;
    *) die "BENCH_CURLS: unknown libcurl '$curl' (system, bookworm, backports or glibc)" ;;
  esac
done

# A CA and an nginx certificate for 127.0.0.1, both ECDSA P-256, made for
# this run only.
make_certs() {
  local dir=$WORK/pki
  mkdir -p "$dir"
  (
    cd "$dir"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -sha256 -days 2 -subj /CN=bench-ca \
      -out ca.pem
    openssl ecparam -name prime256v1 -genkey -noout -out server.key
    openssl req -new -key server.key -subj /CN=127.0.0.1 -out server.csr
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
      -CAcreateserial -days 2 -sha256 -extfile ext -out server.pem
  ) >"$OUT/openssl.log" 2>&1 || die "openssl failed: see $OUT/openssl.log"
  CA_FILE=$dir/ca.pem
}

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
  TLS_H1_PORT=$(free_port)
  TLS_H2_PORT=$(free_port)
  STATUS_PORT=$(free_port)
  local prefix=$WORK/nginx
  mkdir -p "$prefix/tmp"
  TLS_LOG=$prefix/tls.log
  sed -e "s#@PREFIX@#$prefix#g" -e "s#@FAST_PORT@#$FAST_PORT#g" \
    -e "s#@SLOW_PORT@#$SLOW_PORT#g" -e "s#@ECHO_MODULE@#$NGINX_ECHO_MODULE#g" \
    -e "s#@TLS_H1_PORT@#$TLS_H1_PORT#g" -e "s#@TLS_H2_PORT@#$TLS_H2_PORT#g" \
    -e "s#@STATUS_PORT@#$STATUS_PORT#g" -e "s#@CERT@#$WORK/pki/server.pem#g" \
    -e "s#@KEY@#$WORK/pki/server.key#g" \
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
  local port
  for port in "$TLS_H1_PORT" "$TLS_H2_PORT"; do
    body=$(curl -fsS --cacert "$CA_FILE" \
      "https://127.0.0.1:$port/api/v1/$ACCOUNT/lists/get-all/") ||
      die "nginx does not answer over TLS on :$port"
  done
  NGINX_WORKER_PID=$(pgrep -P "$NGINX_PID" | head -1)
  [ -n "$NGINX_WORKER_PID" ] || die "no nginx worker"
}

GATEWAY_HELP=$("$GATEWAY" --helpfull 2>&1 || true)
has_flag() { grep -q -- "--$1 " <<<"$GATEWAY_HELP"; }

# start_gateway UPSTREAM_URL SHARDS CURL [flags...]: sets GW_PID, GW_PORT,
# GW_ADMIN. CURL names the libcurl (BENCH_CURLS) it runs with.
start_gateway() {
  local url=$1 shards=$2 curl=$3
  shift 3
  GW_PORT=$(free_port)
  GW_ADMIN=$(free_port)
  local flags=(
    --listen="127.0.0.1:$GW_PORT" --admin_listen="127.0.0.1:$GW_ADMIN"
    --upstream_url="$url" --account_code="$ACCOUNT"
    --upstream_shards="$shards" --shutdown_drain=0s --shutdown_timeout=1s
  )
  # Issue 4's admission limit must not shed the 4,096-in-flight scenario.
  if has_flag max_inflight; then flags+=(--max_inflight=8192); fi
  # nginx plays Connyline over plain HTTP for a, b and c (refused by
  # default since issue 8); e and f are HTTPS.
  if [[ $url == http://* ]] && has_flag allow_insecure_upstream; then
    flags+=(--allow_insecure_upstream)
  fi
  flags+=("$@" "${EXTRA_GATEWAY_FLAGS[@]}")
  local gateway=$GATEWAY
  [ "$curl" != glibc ] || gateway=$GATEWAY_GLIBC
  local stderr=$OUT/gateway-${url//[^a-zA-Z0-9]/_}-$shards-$curl.stderr
  # Any 56 printable characters: nginx ignores the token. stdout carries one
  # JSON line per RPC; it is discarded, the codes are read from /metrics.
  CONNYLINE_TOKEN=$(printf 'b%.0s' $(seq 56)) \
    LD_LIBRARY_PATH=${CURL_LIBDIR[$curl]} "$gateway" "${flags[@]}" \
    >/dev/null 2>"$stderr" &
  GW_PID=$!
  PIDS+=("$GW_PID")
  wait_for_port "$GW_PORT" "$GW_PID" campaign-gateway "$stderr"
  wait_for_port "$GW_ADMIN" "$GW_PID" "campaign-gateway admin" "$stderr"
  local loaded
  loaded=$(grep -o '/[^ ]*libcurl\.so[^ ]*' "/proc/$GW_PID/maps" | sort -u | head -1)
  [ -z "${CURL_LIBDIR[$curl]}" ] || [[ $loaded == "${CURL_LIBDIR[$curl]}"/* ]] ||
    die "gateway loaded $loaded, not the $curl libcurl"
  log "gateway pid $GW_PID on :$GW_PORT (admin :$GW_ADMIN) -> $url, shards $shards, $loaded"
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
    # Why, as the gateway counted it (codes and reasons; upstream outcomes).
    curl -fsS "http://127.0.0.1:$1/metrics" |
      grep -E '^campaign_gateway_(rpcs_total\{.*ListLists|upstream_requests_total|guard_events_total)' |
      grep -v 'code="OK"' | sed 's/^/  /' >&2 || true
  fi
}

# Connections nginx has accepted so far (all its ports).
nginx_accepts() {
  curl -fsS "http://127.0.0.1:$STATUS_PORT/status" |
    awk 'NR == 3 { print $1 }'
}
# Lines in nginx's TLS log, once its buffer (flushed every second) is out.
tls_log_lines() {
  sleep 1.2
  if [ -f "$TLS_LOG" ]; then wc -l <"$TLS_LOG"; else echo 0; fi
}
# tls_handshakes FROM TO: "FULL RESUMED" for the connections whose first
# request is logged on lines FROM+1..TO.
tls_handshakes() {
  [ -f "$TLS_LOG" ] || { echo "0 0"; return; }
  awk -v s="$1" -v e="$2" '
    !seen[$1]++ && NR > s && NR <= e { if ($2 == "r") r++; else f++ }
    END { printf "%d %d\n", f, r }' "$TLS_LOG"
}

RESULTS=()
# One format for the table's header and rows.
# shellcheck disable=SC2059
ROW_FORMAT='%-40s %7s %8s %8s %7s %6s %7s %6s %6s %11s  %s'
# shellcheck disable=SC2059
row() { RESULTS+=("$(printf "$ROW_FORMAT" "$@")"); }
FAILED_RPCS=0

# Calls for a measured run of about MEASURE_SECONDS at the warm-up's rate.
calls_for() {  # calls_for WARMUP_RPS MIN
  awk -v rps="$1" -v s="$MEASURE_SECONDS" -v min="$2" \
    'BEGIN { n = int(rps * s); printf "%d\n", n < min ? min : n }'
}

# load_scenario LABEL PORT PID ADMIN|"" CLIENTS STREAMS WARMUP [UPSTREAM_PID]
# [tls]: warm-up, then a measured run of about MEASURE_SECONDS; one table
# row. With an UPSTREAM_PID it counts the connections nginx accepted over
# both runs (CONNS); with "tls" also the handshakes, full and resumed, over
# both runs (FULL, RESUMED) and in the measured run (STEADY_FULL).
load_scenario() {
  local label=$1 port=$2 pid=$3 admin=$4 clients=$5 streams=$6 warmup=$7
  local upstream_pid=${8:-} tls=${9:-}
  local url=http://127.0.0.1:$port$GRPC_PATH name=${label//[^a-zA-Z0-9]/_}
  local accepts0="" lines0=0 lines1=0 lines2=0
  CONNS=- FULL=- RESUMED=- STEADY_FULL=-
  [ -z "$upstream_pid" ] || accepts0=$(nginx_accepts)
  [ -z "$tls" ] || lines0=$(tls_log_lines)
  [ -z "$admin" ] || codes_begin "$admin"
  log "$label: warm-up, $warmup calls"
  h2load_run "$name-warmup" "$url" "$clients" "$streams" "$warmup" \
    "${GRPC_FLAGS[@]}"
  rm -f "$WORK/$name-warmup.us"
  local calls perf_pid=""
  calls=$(calls_for "$RPS" "$warmup")
  [ -z "$tls" ] || lines1=$(tls_log_lines)
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
  [ -z "$upstream_pid" ] || CONNS=$(($(nginx_accepts) - accepts0))
  local handshakes=-
  if [ -n "$tls" ]; then
    lines2=$(tls_log_lines)
    read -r FULL RESUMED < <(tls_handshakes "$lines0" "$lines2")
    read -r STEADY_FULL _ < <(tls_handshakes "$lines1" "$lines2")
    handshakes="$FULL/$RESUMED"
  fi
  log "$label: $RPS req/s, p50 $P50_MS ms, p99 $P99_MS ms, $CPU_US us CPU/call (nginx $UPSTREAM_US), $CS switches/call, peak $PEAK MiB, $CONNS connections, TLS full/resumed $handshakes ($STEADY_FULL full while measuring); $CODES"
  row "$label" "$RPS" "$P50_MS" "$P99_MS" "$CPU_US" "$UPSTREAM_US" "$PEAK" \
    "$CS" "$CONNS" "$handshakes" "$CODES"
}

# --- 4. The run -------------------------------------------------------------------

START=$(date +%s)
make_certs
start_nginx
log "nginx pid $NGINX_PID (:$FAST_PORT 0 ms, :$SLOW_PORT 100 ms, HTTPS :$TLS_H1_PORT HTTP/1.1 and :$TLS_H2_PORT HTTP/2, 100 ms); runs of ~${MEASURE_SECONDS}s"

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

# Gateway scenarios, per libcurl and shard count; keys "CURL shards=N".
declare -A A_RPS A_CPU B_RPS B_P99 B_PEAK C_ADDED C_GW_P50
declare -A E_RPS E_STEADY F_RPS F_CONNS F_STEADY
KEYS=()
# c: one call at a time through the gateway on GW_PORT, and straight to
# nginx over HTTP/1.1 keep-alive as the gateway calls it. Three alternating
# rounds, pooled, so that a burst of noise on this shared machine hits both.
serial_scenario() {  # serial_scenario KEY LABEL_SUFFIX
  local key=$1 suffix=$2 gw_url nginx_url
  gw_url=http://127.0.0.1:$GW_PORT$GRPC_PATH
  nginx_url=http://127.0.0.1:$FAST_PORT/api/v1/$ACCOUNT/lists/get-all/
  log "c$suffix: 3 alternating rounds of $SERIAL_CALLS calls each way"
  h2load_run c-warmup-gw "$gw_url" 1 1 "$SERIAL_CALLS" "${GRPC_FLAGS[@]}"
  h2load_run c-warmup-nginx "$nginx_url" 1 1 "$SERIAL_CALLS" --h1
  rm -f "$WORK"/c-warmup-*.us
  codes_begin "$GW_ADMIN"
  local gw_ticks=0 gw_switches=0 nginx_rps=0 gw_rps=0 round calls
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
  C_GW_P50[$key]=$P50_MS
  row "c gateway, 1 in flight$suffix" $((gw_rps / 3)) "$P50_MS" "$P99_MS" \
    "$(us_per_call "$gw_ticks" "$calls")" - "$(peak_mib "$GW_PID")" \
    "$(awk -v s="$gw_switches" -v n="$calls" 'BEGIN { printf "%.2f", s / n }')" \
    - - "$CODES"
  percentiles c-nginx-1 c-nginx-2 c-nginx-3

  row "c nginx direct (HTTP/1.1), 1" $((nginx_rps / 3)) "$P50_MS" \
    "$P99_MS" - - - - - - "HTTP 200"
  C_ADDED[$key]=$(awk -v g="${C_GW_P50[$key]}" -v n="$P50_MS" \
    'BEGIN { printf "%.3f", g - n }')
}

for curl in "${CURLS[@]}"; do
  for shards in "${SHARDS[@]}"; do
    key="$curl shards=$shards"
    KEYS+=("$key")
    sfx=", shards=$shards"
    [ "$curl" = system ] || sfx+=", $curl"
    start_gateway "http://127.0.0.1:$FAST_PORT" "$shards" "$curl"
    # c twice: on the fresh gateway and after a's load, to show whether a
    # heavy run leaves serial calls dearer (bench/README.md).
    serial_scenario "$key fresh" "$sfx, fresh"
    load_scenario "a 0ms, 256 in flight$sfx" "$GW_PORT" "$GW_PID" \
      "$GW_ADMIN" 16 16 "$WARMUP_CALLS" "$NGINX_WORKER_PID"
    A_RPS[$key]=$RPS A_CPU[$key]=$CPU_US
    serial_scenario "$key" "$sfx, after a"
    stop "$GW_PID"

    # b, e, f: a fresh gateway each, so that its peak memory and the
    # connections it opens are that scenario's.
    start_gateway "http://127.0.0.1:$SLOW_PORT" "$shards" "$curl"
    load_scenario "b 100ms, 4096 in flight$sfx" "$GW_PORT" "$GW_PID" \
      "$GW_ADMIN" 64 64 $((4096 * 4)) "$NGINX_WORKER_PID"
    B_RPS[$key]=$RPS B_P99[$key]=$P99_MS B_PEAK[$key]=$PEAK
    stop "$GW_PID"

    start_gateway "https://127.0.0.1:$TLS_H1_PORT" "$shards" "$curl" \
      --upstream_ca_file="$CA_FILE"
    load_scenario "e https h1, 100ms, 4096$sfx" "$GW_PORT" "$GW_PID" \
      "$GW_ADMIN" 64 64 $((4096 * 4)) "$NGINX_WORKER_PID" tls
    E_RPS[$key]=$RPS
    E_STEADY[$key]=$STEADY_FULL
    stop "$GW_PID"

    start_gateway "https://127.0.0.1:$TLS_H2_PORT" "$shards" "$curl" \
      --upstream_ca_file="$CA_FILE"
    load_scenario "f https h2, 100ms, 4096$sfx" "$GW_PORT" "$GW_PID" \
      "$GW_ADMIN" 64 64 $((4096 * 4)) "$NGINX_WORKER_PID" tls
    F_RPS[$key]=$RPS F_CONNS[$key]=$CONNS
    F_STEADY[$key]=$STEADY_FULL
    stop "$GW_PID"
  done
done

# --- 5. Report --------------------------------------------------------------------

echo
echo "campaign-gateway benchmark: $(nproc) cores, $(date -u +%FT%TZ)," \
  "$(($(date +%s) - START)) s, quick=$QUICK, $(basename "$GATEWAY") from" \
  "$BUILD_DIR at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?');" \
  "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2059
printf "$ROW_FORMAT\n" scenario "req/s" "p50 ms" "p99 ms" "CPU us" nginx \
  "peak MiB" cs conns "TLS full/r" "gRPC codes"
printf '%s\n' "${RESULTS[@]}"
echo "CPU us: the server's CPU time per call (nginx: nginx's); cs: the server's"
echo "context switches per call; conns: connections nginx accepted during the"
echo "scenario (warm-up and measured run); TLS full/r: their handshakes, full"
echo "and resumed; d' finishes each call from another thread."

verdict() {  # verdict VALUE OP LIMIT: PASS or MISS
  awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
    ok = op == ">=" ? v >= l : op == "<=" ? v <= l : op == "==" ? v == l : v < l
    print ok ? "PASS" : "MISS" }'
}
target() { printf '%-70s %-12s %s\n' "$1" "$2" "$(verdict "$2" "$3" "$4")"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# Issue 10's targets. b, e and f against Little's law: 4,096 / 0.1 s.
LITTLE=40960
echo
printf '%-70s %-12s %s\n' target measured verdict
for key in "${KEYS[@]}"; do
  target "a $key: req/s / ceiling's ($CEIL_RPS) >= 0.40" \
    "$(ratio "${A_RPS[$key]}" "$CEIL_RPS")" '>=' 0.40
  target "a $key: gateway CPU us per call < 60" "${A_CPU[$key]}" '<' 60
  target "b $key: req/s / $LITTLE >= 0.50" \
    "$(ratio "${B_RPS[$key]}" "$LITTLE")" '>=' 0.50
  target "b $key: p99 ms < 250" "${B_P99[$key]}" '<' 250
  target "b $key: peak memory MiB < 100" "${B_PEAK[$key]}" '<' 100
  target "c $key: added ms, p50 gateway - p50 nginx < 0.10" \
    "${C_ADDED[$key]}" '<' 0.10
  target "e $key: https h1 req/s / $LITTLE >= 0.35" \
    "$(ratio "${E_RPS[$key]}" "$LITTLE")" '>=' 0.35
  target "e $key: full handshakes while measuring == 0" \
    "${E_STEADY[$key]}" '==' 0
  target "f $key: https h2 req/s / $LITTLE >= 0.45" \
    "$(ratio "${F_RPS[$key]}" "$LITTLE")" '>=' 0.45
  target "f $key: upstream connections <= 64" "${F_CONNS[$key]}" '<=' 64
  target "f $key: full handshakes while measuring == 0" \
    "${F_STEADY[$key]}" '==' 0
done
echo "(gRPC alone, the ceiling at 1 in flight: p50 $C_CEIL_P50 ms; the ceiling" \
  "at 4,096 in flight: $CEIL_4096_RPS req/s)"

if ((FAILED_RPCS)); then
  log "some RPCs did not end OK: see the gRPC codes column"
  exit 1
fi
