#!/usr/bin/env bash
# bench/exactly_once.sh: exactly-once creates across gateway replicas that
# share Redis, and the latency Redis adds to a create.
#
#   bench/exactly_once.sh                 full run (about 45 s after the build)
#   BENCH_QUICK=1 bench/exactly_once.sh   smoke run (about 15 s)
#
# Environment:
#   BUILD_DIR       use the binaries already built there (default: build
#                   Release into build-bench/ first)
#   BENCH_KEYS      keys of the exactly-once check (default 2000; 500 quick)
#   BENCH_REPLICAS  gateway replicas of part 1 (default 3)
#   BENCH_STORE     redis (default) or memory: part 1 as a control, one
#                   replica without --redis_url (its own in-memory store)
#                   getting every call
#   BENCH_OUT       directory for logs (default: a temp dir, removed at exit
#                   unless the run failed)
#
# 1. Exactly once: one redis-server (loopback, a password), nginx playing
#    Connyline (creates answered after 50 ms, every POST logged with its
#    body) and 3 gateway replicas on that Redis and account.
#    keyed_create_client sends each key to 2 or 3 replicas, concurrently or
#    one after another (five patterns, the first replica rotating), 64 keys
#    at a time. Checks: exactly one POST per key at nginx (none lost, none
#    doubled), every call OK with the key's campaign and the same answer as
#    the key's other calls, the answers traced to that one POST (nginx's
#    $request_id is in the message), and replayed answers = calls - keys.
# 2. Latency: one replica with --redis_url and one without (the in-memory
#    store), nginx answering creates at once, distinct keys, 1 and 32 calls
#    in flight, keyed and unkeyed creates, alternating the two replicas
#    round by round; p50/p99 pooled over the rounds, and the ratios.
#
# Exits non-zero when the setup fails, any call fails, or any check of 1
# fails. Latency has no target: it is reported.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=exactly-once
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
QUICK=${BENCH_QUICK:-0}
ACCOUNT=bench
REPLICAS=${BENCH_REPLICAS:-3}
STORE=${BENCH_STORE:-redis}
case $STORE in
  redis) ;;
  memory) REPLICAS=1 ;;
  *) echo "BENCH_STORE must be redis or memory" >&2; exit 2 ;;
esac
UPSTREAM_DELAY=0.05  # seconds nginx takes to answer a create in part 1
KEY_CONCURRENCY=64   # keys under way at once in part 1
LATENCY_CONCURRENCY=32
if ((QUICK)); then
  KEYS=${BENCH_KEYS:-500}
  ROUNDS=2              # alternating rounds of part 2
  SERIAL_CALLS=300      # calls per round and configuration, 1 in flight
  CONCURRENT_CALLS=1500 # the same, 32 in flight
else
  KEYS=${BENCH_KEYS:-2000}
  ROUNDS=4
  SERIAL_CALLS=1000
  CONCURRENT_CALLS=5000
fi

# --- Packages and binaries ------------------------------------------------------

install_packages nginx libnginx-mod-http-echo redis-server curl
NGINX_ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
[ -f "$NGINX_ECHO_MODULE" ] || die "nginx echo module not found"
REDIS_SERVER=$(command -v redis-server) || die "redis-server not found"

build_binaries campaign-gateway keyed_create_client
GATEWAY=$BUILD_DIR/service/campaign-gateway
CLIENT=$BUILD_DIR/bench/keyed_create_client
for binary in "$GATEWAY" "$CLIENT"; do
  [ -x "$binary" ] || die "missing $binary"
done

# --- Processes, ports, cleanup ---------------------------------------------------

# One redis-server on loopback with a password, nothing persisted.
start_redis() {
  REDIS_PORT=$(free_port)
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/redis.password"
  chmod 600 "$WORK/redis.password"
  mkdir -p "$WORK/redis"
  # The password goes in through a config file on stdin, not the command
  # line (ps would show it).
  printf 'requirepass %s\n' "$(cat "$WORK/redis.password")" |
    "$REDIS_SERVER" - --bind 127.0.0.1 --port "$REDIS_PORT" \
      --dir "$WORK/redis" --save '' --appendonly no --daemonize no \
      >"$OUT/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  wait_for_port "$REDIS_PORT" "$REDIS_PID" redis-server "$OUT/redis.log"
  [ "$(redis_cli PING)" = PONG ] || die "redis-server does not answer PING"
}
redis_cli() {
  REDISCLI_AUTH=$(cat "$WORK/redis.password") \
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --no-auth-warning "$@"
}
redis_scripts() {  # scripts (EVAL, EVALSHA) Redis has run so far
  redis_cli INFO commandstats | tr -d '\r' | awk -F'[:=,]' '
    $1 ~ /^cmdstat_eval/ { n += $3 } END { printf "%d\n", n }'
}

# nginx plays Connyline's create endpoint: at once on FAST_PORT, after
# UPSTREAM_DELAY with every POST logged on LOGGED_PORT.
start_nginx() {
  FAST_PORT=$(free_port)
  LOGGED_PORT=$(free_port)
  NGINX_PREFIX=$WORK/nginx
  mkdir -p "$NGINX_PREFIX/tmp"
  sed -e "s#@PREFIX@#$NGINX_PREFIX#g" -e "s#@FAST_PORT@#$FAST_PORT#g" \
    -e "s#@LOGGED_PORT@#$LOGGED_PORT#g" -e "s#@DELAY@#$UPSTREAM_DELAY#g" \
    -e "s#@ECHO_MODULE@#$NGINX_ECHO_MODULE#g" \
    "$ROOT/bench/exactly_once.nginx.conf.in" >"$NGINX_PREFIX/nginx.conf"
  nginx -e "$NGINX_PREFIX/error.log" -p "$NGINX_PREFIX" \
    -c "$NGINX_PREFIX/nginx.conf" -g 'daemon off;' 2>"$OUT/nginx.stderr" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  wait_for_port "$FAST_PORT" "$NGINX_PID" nginx "$OUT/nginx.stderr"
  wait_for_port "$LOGGED_PORT" "$NGINX_PID" nginx "$OUT/nginx.stderr"
  local body
  body=$(curl -fsS -X POST -d '{"campaign_name":"bench-probe"}' \
    "http://127.0.0.1:$FAST_PORT/api/v1/$ACCOUNT/campaigns/sms/create") ||
    die "nginx does not answer the create path"
  [[ $body == *'"campaign_name":"bench-probe"'* ]] || die "nginx answers '$body'"
}

# start_gateway NAME UPSTREAM_PORT STDOUT [flags...]: sets GW_PID, GW_PORT.
start_gateway() {
  local name=$1 upstream=$2 stdout=$3
  shift 3
  GW_PORT=$(free_port)
  local admin
  admin=$(free_port)
  local stderr=$OUT/$name.stderr
  # Any 56 printable characters: nginx ignores the token. stdout carries the
  # JSON log: its own lines and one per RPC.
  CONNYLINE_TOKEN=$(printf 'b%.0s' $(seq 56)) "$GATEWAY" \
    --listen="127.0.0.1:$GW_PORT" --admin_listen="127.0.0.1:$admin" \
    --allow_insecure_upstream --upstream_url="http://127.0.0.1:$upstream" --account_code="$ACCOUNT" \
    --shutdown_drain=0s --shutdown_timeout=1s "$@" >"$stdout" 2>"$stderr" &
  GW_PID=$!
  PIDS+=("$GW_PID")
  wait_for_port "$GW_PORT" "$GW_PID" "$name" "$stderr"
  if [[ " $* " == *" --redis_url="* ]]; then
    grep -q 'idempotency store (Redis) connected' "$stdout" ||
      die "$name did not connect to Redis: $(tail -3 "$stdout")"
  fi
  log "$name: pid $GW_PID on :$GW_PORT -> :$upstream $*"
}

# summary FILE NAME: a value from keyed_create_client's "name value" lines.
summary() { awk -v n="$2" '$1 == n { print $2; found = 1 } END { if (!found) print 0 }' "$1"; }

START=$(date +%s)
RUN_ID=$(date +%s)-$$  # keys are unique per run: Redis may outlive nothing,
                       # but the nginx log and Redis are shared by parts
start_redis
start_nginx
log "redis pid $REDIS_PID on :$REDIS_PORT; nginx pid $NGINX_PID" \
  "(:$FAST_PORT at once, :$LOGGED_PORT after ${UPSTREAM_DELAY}s, logged)"
REDIS_FLAGS=(--redis_url="redis://127.0.0.1:$REDIS_PORT"
  --redis_password_file="$WORK/redis.password")

# --- 1. Exactly once across replicas ------------------------------------------------

TARGETS=()
REPLICA_PIDS=()
REPLICA_FLAGS=("${REDIS_FLAGS[@]}")
[ "$STORE" = redis ] || REPLICA_FLAGS=()
for i in $(seq "$REPLICAS"); do
  start_gateway "replica-$i" "$LOGGED_PORT" "$OUT/replica-$i.rpcs" \
    "${REPLICA_FLAGS[@]}"
  TARGETS+=("127.0.0.1:$GW_PORT")
  REPLICA_PIDS+=("$GW_PID")
done

log "1: $KEYS keys over $REPLICAS replicas, $KEY_CONCURRENCY keys at a time"
EO_PREFIX=eo-$RUN_ID
scripts_before=$(redis_scripts)
client_status=0
"$CLIENT" --mode=exactly_once --targets="$(IFS=,; echo "${TARGETS[*]}")" \
  --keys="$KEYS" --concurrency="$KEY_CONCURRENCY" --key_prefix="$EO_PREFIX" \
  --keys_out="$OUT/eo-keys.tsv" --calls_out="$OUT/eo-calls.tsv" \
  >"$OUT/eo.summary" 2>"$OUT/eo.stderr" || client_status=$?
redis_per_call=$(awk -v a="$scripts_before" -v b="$(redis_scripts)" \
  -v n="$(summary "$OUT/eo.summary" calls)" 'BEGIN { printf "%.2f", (n > 0 ? (b - a) / n : 0) }')
cat "$OUT/eo.stderr" >&2
((client_status <= 1)) || die "keyed_create_client failed (exit $client_status)"
for pid in "${REPLICA_PIDS[@]}"; do stop "$pid"; done
# nginx writes its log line when the answer is sent; the replicas are gone,
# so every POST that reached nginx has been answered and logged.
CREATES_LOG=$NGINX_PREFIX/creates.log
touch "$CREATES_LOG"

# POSTs per campaign_name (this run's keys only), joined with what the client
# saw per key: campaign_name, verdict, answer message ("... nginx ID").
read -r EO_POSTS EO_ONE EO_LOST EO_DOUBLE EO_STRAY EO_TRACED < <(
  awk -F'\t' -v prefix="bench-$EO_PREFIX-" '
    FNR == NR {  # nginx log: msec, request_id, status, method, name, body
      if ($4 != "POST") next
      if (index($5, prefix) != 1) next
      posts++; n[$5]++; id[$5] = $2
      next
    }
    {  # client: name, verdict, message
      known[$1] = 1
      if (!($1 in n)) {
        if (lost++ < 10) print "0 POSTs for " $1 > "/dev/stderr"
        next
      }
      if (n[$1] == 1) one++
      else if (double++ < 10) print n[$1] " POSTs for " $1 > "/dev/stderr"
      if ($3 ~ (" nginx " id[$1] "$")) traced++
    }
    END {
      for (k in n) if (!(k in known)) stray++
      printf "%d %d %d %d %d %d\n", posts, one, lost, double, stray, traced
    }' "$CREATES_LOG" "$OUT/eo-keys.tsv")

# The keys' records in Redis (the idempotency store shared by the replicas).
EO_IN_REDIS=$(redis_cli --scan --pattern "campaign-gateway:{$ACCOUNT}:idem:$EO_PREFIX-*" |
  wc -l)

EO_CALLS=$(summary "$OUT/eo.summary" calls)
EO_OK=$(summary "$OUT/eo.summary" ok)
EO_REPLAYED=$(summary "$OUT/eo.summary" replayed)
EO_KEYS_BAD=$(summary "$OUT/eo.summary" keys_bad)
EO_FAILED=0
check() {  # check DESCRIPTION MEASURED EXPECTED
  local verdict=PASS
  if [ "$2" != "$3" ]; then
    verdict=FAIL
    EO_FAILED=1
  fi
  CHECKS+=("$(printf '%-58s %10s %10s  %s' "$1" "$2" "$3" "$verdict")")
}
CHECKS=()
check "keys" "$(wc -l <"$OUT/eo-keys.tsv")" "$KEYS"
check "POSTs at nginx" "$EO_POSTS" "$KEYS"
check "keys with exactly 1 POST" "$EO_ONE" "$KEYS"
check "keys lost (0 POSTs)" "$EO_LOST" 0
check "keys sent twice or more" "$EO_DOUBLE" 0
check "POSTs for no key of this run" "$EO_STRAY" 0
check "calls OK" "$EO_OK" "$EO_CALLS"
check "keys whose calls disagree / name another campaign" "$EO_KEYS_BAD" 0
check "keys whose answer carries their POST's nginx id" "$EO_TRACED" "$KEYS"
check "replayed answers = calls - keys" "$EO_REPLAYED" $((EO_CALLS - KEYS))
if [ "$STORE" = redis ]; then
  check "keys recorded in Redis" "$EO_IN_REDIS" "$KEYS"
else
  check "keys recorded in Redis (control: none)" "$EO_IN_REDIS" 0
fi

# --- 2. Latency: Redis store vs in-memory ---------------------------------------------

start_gateway memory "$FAST_PORT" "$WORK/memory.rpcs"
MEM_TARGET=127.0.0.1:$GW_PORT
start_gateway redis "$FAST_PORT" "$WORK/redis.rpcs" "${REDIS_FLAGS[@]}"
REDIS_TARGET=127.0.0.1:$GW_PORT

LAT_FAILED=0
# latency_run NAME TARGET IN_FLIGHT CALLS KEYED: appends each call's ms to
# $WORK/NAME.ms.
latency_run() {
  local name=$1 target=$2 in_flight=$3 calls=$4 keyed=$5
  local tag=$name-$((++LAT_RUN))
  if ! "$CLIENT" --mode=latency --targets="$target" --keys="$calls" \
    --concurrency="$in_flight" --keyed="$keyed" \
    --key_prefix="lat-$RUN_ID-$tag" --calls_out="$WORK/$tag.tsv" \
    >"$WORK/$tag.summary" 2>"$OUT/$tag.stderr"; then
    cat "$OUT/$tag.stderr" >&2
    log "$tag: $(summary "$WORK/$tag.summary" not_ok) calls of $calls not OK"
    LAT_FAILED=1
  fi
  cut -f5 "$WORK/$tag.tsv" >>"$WORK/$name.ms"
  RPS_SUM[$name]=$((${RPS_SUM[$name]:-0} + $(summary "$WORK/$tag.summary" calls_per_s)))
  rm -f "$WORK/$tag.tsv"
}
LAT_RUN=0
declare -A RPS_SUM=()

log "2: warm-up"
for target in "$MEM_TARGET" "$REDIS_TARGET"; do
  for keyed in false true; do
    latency_run warmup "$target" "$LATENCY_CONCURRENCY" 1000 "$keyed"
  done
done
rm -f "$WORK/warmup.ms"

STORES=(memory redis)
declare -A STORE_TARGET=([memory]=$MEM_TARGET [redis]=$REDIS_TARGET)
for round in $(seq "$ROUNDS"); do
  # A/B, then B/A: drift on this shared machine hits both alike.
  order=("${STORES[@]}")
  ((round % 2)) || order=(redis memory)
  log "2: round $round of $ROUNDS (${order[*]})"
  for in_flight in 1 "$LATENCY_CONCURRENCY"; do
    calls=$SERIAL_CALLS
    ((in_flight == 1)) || calls=$CONCURRENT_CALLS
    for store in "${order[@]}"; do
      for keyed in false true; do
        latency_run "$store-$keyed-$in_flight" "${STORE_TARGET[$store]}" \
          "$in_flight" "$calls" "$keyed"
      done
    done
  done
done

# percentiles NAME: "p50 p99" in ms over the pooled calls.
percentiles() {
  sort -n "$WORK/$1.ms" | awk '
    { v[NR] = $1 }
    END {
      i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
      i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
      printf "%.3f %.3f %d\n", v[i50], v[i99], NR
    }'
}

# --- Report -----------------------------------------------------------------------

echo
echo "campaign-gateway exactly-once benchmark: $(nproc) cores, $(date -u +%FT%TZ)," \
  "$(($(date +%s) - START)) s, quick=$QUICK, $(basename "$GATEWAY") from $BUILD_DIR"
echo
where="on one Redis"
[ "$STORE" = redis ] || where="without Redis (control)"
echo "1. exactly once: $KEYS keys, $REPLICAS replica(s) $where, $EO_CALLS calls" \
  "($KEY_CONCURRENCY keys at a time; upstream ${UPSTREAM_DELAY}s)"
printf '%-58s %10s %10s  %s\n' check measured expected verdict
printf '%s\n' "${CHECKS[@]}"
echo "latency of all calls: p50 $(summary "$OUT/eo.summary" all_p50_ms) ms," \
  "p99 $(summary "$OUT/eo.summary" all_p99_ms) ms; leaders' answers" \
  "p50 $(summary "$OUT/eo.summary" fresh_p50_ms) / p99" \
  "$(summary "$OUT/eo.summary" fresh_p99_ms) ms; replayed" \
  "p50 $(summary "$OUT/eo.summary" replayed_p50_ms) / p99" \
  "$(summary "$OUT/eo.summary" replayed_p99_ms) ms"
echo "Redis scripts (EVAL/EVALSHA round trips) per call: $redis_per_call"
echo "replayed answers by how the key was sent (a repeat sent while its leader"
echo "is under way waits for it; one sent after it reads the recorded answer):"
for p in 0 1 2 3 4; do
  printf '  %-18s %6s calls  p50 %8s ms  p99 %8s ms\n' \
    "$(awk -v n="pattern_${p}_name" '$1 == n { $1 = ""; sub(/^ /, ""); print }' "$OUT/eo.summary")" \
    "$(summary "$OUT/eo.summary" "replayed_pattern_${p}_calls")" \
    "$(summary "$OUT/eo.summary" "replayed_pattern_${p}_p50_ms")" \
    "$(summary "$OUT/eo.summary" "replayed_pattern_${p}_p99_ms")"
done

echo
echo "2. latency, one replica, distinct keys, upstream at once; $ROUNDS alternating" \
  "rounds pooled ($SERIAL_CALLS calls per round at 1 in flight, $CONCURRENT_CALLS at" \
  "$LATENCY_CONCURRENCY)"
printf '%-9s %-8s %-10s %7s %8s %8s %8s\n' "in flight" request store calls \
  "p50 ms" "p99 ms" "calls/s"
declare -A P50 P99
for in_flight in 1 "$LATENCY_CONCURRENCY"; do
  for keyed in false true; do
    for store in memory redis; do
      name=$store-$keyed-$in_flight
      read -r p50 p99 n < <(percentiles "$name")
      P50[$name]=$p50 P99[$name]=$p99
      request=unkeyed
      [ "$keyed" = false ] || request=keyed
      printf '%-9s %-8s %-10s %7s %8s %8s %8s\n' "$in_flight" "$request" \
        "$store" "$n" "$p50" "$p99" $((RPS_SUM[$name] / ROUNDS))
    done
  done
done
echo
printf '%-9s %-8s %-22s %-22s\n' "in flight" request "p50 redis/memory (+ms)" \
  "p99 redis/memory (+ms)"
for in_flight in 1 "$LATENCY_CONCURRENCY"; do
  for keyed in false true; do
    m=memory-$keyed-$in_flight r=redis-$keyed-$in_flight
    request=unkeyed
    [ "$keyed" = false ] || request=keyed
    printf '%-9s %-8s %-22s %-22s\n' "$in_flight" "$request" \
      "$(awk -v r="${P50[$r]}" -v m="${P50[$m]}" 'BEGIN { printf "%.2f (%+.3f)", r / m, r - m }')" \
      "$(awk -v r="${P99[$r]}" -v m="${P99[$m]}" 'BEGIN { printf "%.2f (%+.3f)", r / m, r - m }')"
  done
done
echo "(with --redis_url every upstream request also asks Redis for admission:"
echo " unkeyed creates pay one Redis round trip, keyed ones two, plus the"
echo " result's write before the leader's caller is answered)"

if ((EO_FAILED || LAT_FAILED)); then
  log "FAILED: see the checks above (logs: $OUT)"
  exit 1
fi
