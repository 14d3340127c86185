#!/usr/bin/env bash
# Loopback load test of the verifier (make loadtest), with Debian's wrk.
#
# Starts, on 127.0.0.1 only:
#   upstream  `obol dev upstream` (a small JSON API)
#   proxy     a bare httputil.ReverseProxy with the verifier's transport
#             settings in front of it (hack/loadproxy)
#   verifier  `obol verifier serve` in front of it, with a free route (/joke)
#             and a priced one (/weather, answered 402 without a payment)
# then runs wrk against each of: the upstream, the proxy, the verifier's free
# route and its 402 path, ROUNDS times in turn (so a burst of load from other
# work on the machine hits all four alike), and prints the median req/s,
# p50/p99 latency and the ratios the verifier is held to:
#   free route >= 0.9x the bare proxy; 402 path >= 0.5x the bare upstream.
# The paid path is not measured here: every paid request needs a fresh
# signed authorization and a facilitator (see `make bench`, BenchmarkScalePaid).
#
# Bounded: ROUNDS x 4 runs of DURATION each (default 3 x 4 x 5s). Every
# process it starts is stopped by its PID on exit. Knobs: DURATION (wrk -d),
# CONNECTIONS (wrk -c, default 32), THREADS (wrk -t, default 1), ROUNDS.
# STRICT=1 exits 1 when a target is missed.
set -euo pipefail

DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-1}"
ROUNDS="${ROUNDS:-3}"
STRICT="${STRICT:-0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
GO="${GO:-go}"

log() { printf 'loadtest: %s\n' "$*" >&2; }

if ! command -v wrk >/dev/null 2>&1; then
  log "installing Debian's wrk"
  sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

log "building obol and hack/loadproxy"
( cd "$ROOT" && "$GO" build -o "$work/obol" ./cmd/obol && "$GO" build -o "$work/loadproxy" ./hack/loadproxy )

# free_port picks a loopback port nothing listens on (nothing answers a
# connect), outside the kernel's ephemeral range.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}

# wait_ready polls url until it answers with status $2 (10 s at most).
wait_ready() {
  local url="$1" want="$2" deadline=$((SECONDS + 10)) code
  while [ $SECONDS -lt $deadline ]; do
    code="$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)"
    [ "$code" = "$want" ] && return 0
    sleep 0.1
  done
  log "$url did not answer $want (last: $code); logs:"
  tail -n 20 "$work"/*.log >&2 || true
  exit 1
}

up_port="$(free_port)"
"$work/obol" dev upstream --listen "127.0.0.1:$up_port" >"$work/upstream.log" 2>&1 &
pids+=($!)
upstream="http://127.0.0.1:$up_port"
wait_ready "$upstream/joke" 200

proxy_port="$(free_port)"
"$work/loadproxy" --listen "127.0.0.1:$proxy_port" --upstream "$upstream" >"$work/proxy.log" 2>&1 &
pids+=($!)
proxy="http://127.0.0.1:$proxy_port"
wait_ready "$proxy/joke" 200

ver_port="$(free_port)"
cat >"$work/pricing.yaml" <<EOF
payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
chain: base-sepolia
# Never called: the load test sends no payments.
facilitatorURL: http://127.0.0.1:1
upstream: $upstream
routes:
  - pattern: /weather
    price: "0.001"
  - pattern: /joke
    price: "0"
EOF
"$work/obol" verifier serve --config "$work/pricing.yaml" --listen "127.0.0.1:$ver_port" --log-level warn >"$work/verifier.log" 2>&1 &
pids+=($!)
verifier="http://127.0.0.1:$ver_port"
wait_ready "$verifier/readyz" 200
wait_ready "$verifier/joke" 200
wait_ready "$verifier/weather" 402

targets=(upstream proxy free 402)
declare -A url=([upstream]="$upstream/joke" [proxy]="$proxy/joke" [free]="$verifier/joke" [402]="$verifier/weather")

# to_ms converts a wrk latency (850.00us, 1.20ms, 1.01s) to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
    printf "%.2f", n
  }'
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
log "load average before: $load_before; $ROUNDS rounds x ${#targets[@]} targets x $DURATION, $CONNECTIONS connections, $THREADS wrk thread(s)"
# time_wait counts sockets in TIME_WAIT to or from the upstream's port: a
# proxy that reuses its upstream connections leaves about none per run.
time_wait() {
  ss -Htan state time-wait "( dport = :$up_port or sport = :$up_port )" | wc -l
}

for round in $(seq 1 "$ROUNDS"); do
  for t in "${targets[@]}"; do
    tw0="$(time_wait)"
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${url[$t]}")"
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    p50="$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
    p99="$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")"
    errors="$(awk '/Socket errors:/ {print $0}' <<<"$out")"
    total="$(awk '/requests in/ {print $1}' <<<"$out")"
    tw=$(( $(time_wait) - tw0 ))
    [ "$tw" -ge 0 ] || tw=0 # older sockets left TIME_WAIT meanwhile
    if [ "$t" = 402 ]; then
      [ "${non2xx:-0}" = "$total" ] || { log "402 path: only ${non2xx:-0} of $total answers were not 2xx"; exit 1; }
    elif [ -n "$non2xx" ]; then
      log "$t: $non2xx of $total answers were not 2xx"; exit 1
    fi
    [ -z "$errors" ] || log "$t round $round: $errors"
    printf '%s %s %s %s %s %s\n' "$t" "$round" "$rps" "$p50" "$p99" "$tw" >>"$work/results"
    log "round $round $t: $rps req/s, p50 $p50 ms, p99 $p99 ms, $tw new upstream sockets in TIME_WAIT"
  done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# median of column $2 for target $1
median() {
  awk -v t="$1" -v c="$2" '$1 == t {print $c}' "$work/results" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

printf '\n%-10s %12s %10s %10s %10s   (median of %s rounds, %s each, -c%s -t%s)\n' target req/s p50-ms p99-ms time-wait "$ROUNDS" "$DURATION" "$CONNECTIONS" "$THREADS"
declare -A rps
for t in "${targets[@]}"; do
  rps[$t]="$(median "$t" 3)"
  printf '%-10s %12.0f %10.2f %10.2f %10.0f\n' "$t" "${rps[$t]}" "$(median "$t" 4)" "$(median "$t" 5)" "$(median "$t" 6)"
done
missed=0
ratio() {
  local name="$1" num="$2" den="$3" target="$4" r verdict
  r="$(awk -v a="$num" -v b="$den" 'BEGIN {printf "%.2f", a / b}')"
  if awk -v r="$r" -v t="$target" 'BEGIN {exit !(r >= t)}'; then verdict="meets"; else verdict="BELOW"; missed=1; fi
  printf '%-34s %5sx  (target >= %sx: %s)\n' "$name" "$r" "$target" "$verdict"
}
echo
ratio "free route / bare proxy" "${rps[free]}" "${rps[proxy]}" 0.9
ratio "402 path / bare upstream" "${rps[402]}" "${rps[upstream]}" 0.5
ratio "bare proxy / bare upstream" "${rps[proxy]}" "${rps[upstream]}" 0
printf '\nload average (1, 5, 15 min): before %s, after %s; %s cores\n' "$load_before" "$load_after" "$(nproc)"
if [ "$STRICT" = 1 ] && [ "$missed" = 1 ]; then exit 1; fi
