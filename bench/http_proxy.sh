#!/usr/bin/env bash
# http_proxy.sh -- a small GET through Sluice's HTTP listener against the origin directly
# and against nginx as a plain reverse proxy, interleaved, with wrk.
#
# Starts, as $RUN_AS: an nginx origin answering `GET /v1/ping` with a 2-byte body; a
# second nginx as a plain reverse proxy in front of it; and Sluice (release build,
# `listen.http`, recording on with the SQLite store, a policy allowing `GET /v1/**`) in
# front of it too. Then, round by round with the order rotated, wrk runs $SECONDS s with
# $CONNECTIONS connections on 2 threads against each target. It reports per target the
# median requests/s and p99 latency over rounds, Sluice's ratio to nginx (median of
# per-round ratios), and the CPU time Sluice spent per request (utime+stime from /proc).
#
# Usage: bench/http_proxy.sh        (as root; installs nginx-light and wrk if missing)
#        SLUICE_RECORDING=off bench/http_proxy.sh   (the relay alone, unrecorded)
# Knobs: ROUNDS=5 SECONDS=10 CONNECTIONS=16 RUN_AS=pgrun ORIGIN_PORT=56610 (nginx +1,
#        sluice +2, admin +3) WORK=${TMPDIR:-/tmp}/http-proxy-bench SLUICE_BIN=<path>
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-5}
SECONDS_PER_RUN=${SECONDS:-10}
CONNECTIONS=${CONNECTIONS:-16}
RUN_AS=${RUN_AS:-pgrun}
ORIGIN_PORT=${ORIGIN_PORT:-56610}
NGINX_PORT=$((ORIGIN_PORT + 1))
SLUICE_PORT=$((ORIGIN_PORT + 2))
ADMIN_PORT=$((ORIGIN_PORT + 3))
WORK=${WORK:-${TMPDIR:-/tmp}/http-proxy-bench}
SLUICE_DIR=$WORK/sluice
export RUST_LOG=${RUST_LOG:-warn} NO_COLOR=1

# shellcheck source=bench/sluice_env.sh
. "$HERE/sluice_env.sh"

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
command -v nginx >/dev/null && command -v wrk >/dev/null || {
  echo "installing nginx-light and wrk" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light wrk >/dev/null || exit 1
}
ensure_run_as || exit 1
# Always the current source: an older release binary may predate the HTTP listener.
(cd "$SLUICE_REPO" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-bench} cargo build --release -q -p sluice >&2) || exit 1
BIN=${CARGO_TARGET_DIR:-/work/target-bench}/release/sluice

PIDS=""
cleanup() { for pid in $PIDS; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"; mkdir -p "$WORK/nginx" "$SLUICE_DIR/data" "$SLUICE_DIR/bin"
chown -R "$RUN_AS": "$WORK"
nginx_conf() {  # nginx_conf NAME BODY
  printf '%s\n' "daemon off; worker_processes 1; pid $WORK/nginx/$1.pid; error_log $WORK/nginx/$1.err warn;" \
    "events { worker_connections 1024; }" \
    "http { access_log off; client_body_temp_path $WORK/nginx/$1-body; proxy_temp_path $WORK/nginx/$1-proxy;" \
    "  fastcgi_temp_path $WORK/nginx/$1-fcgi; uwsgi_temp_path $WORK/nginx/$1-uwsgi; scgi_temp_path $WORK/nginx/$1-scgi;" \
    "  $2 }" >"$WORK/nginx/$1.conf"
}
nginx_conf origin "server { listen 127.0.0.1:$ORIGIN_PORT; location / { return 200 'ok'; } }"
nginx_conf proxy "upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 32; } server { listen 127.0.0.1:$NGINX_PORT; location / { proxy_http_version 1.1; proxy_set_header Connection ''; proxy_pass http://origin; } }"
chown -R "$RUN_AS": "$WORK/nginx"
for name in origin proxy; do
  setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- nginx -c "$WORK/nginx/$name.conf" &
  PIDS="$PIDS $!"
done

install -m 755 "$BIN" "$SLUICE_DIR/bin/sluice"
printf '%s\n' \
  "listen: { http: 127.0.0.1:$SLUICE_PORT, admin: 127.0.0.1:$ADMIN_PORT }" \
  "store: sqlite://$SLUICE_DIR/data/sluice.db" \
  "data_dir: $SLUICE_DIR/data" \
  "recording: { enabled: $( [ "${SLUICE_RECORDING:-on}" = off ] && echo false || echo true ) }" \
  "identity: { providers: [ { name: local, local: {} } ] }" \
  "connections: [ { name: origin, kind: http, upstream: 'http://127.0.0.1:$ORIGIN_PORT' } ]" \
  "policies:" \
  "  - { name: bench, match: { roles: [bench] }, connections: [origin], allow: [ { methods: [GET], paths: ['/v1/**'] } ] }" \
  >"$SLUICE_DIR/sluice.yaml"
chown -R "$RUN_AS": "$SLUICE_DIR"
TOKEN=$(cd "$SLUICE_DIR" && as_run_as "$SLUICE_DIR/bin/sluice" -c "$SLUICE_DIR/sluice.yaml" token issue --subject bench --roles bench --ttl 24h) || exit 1
(cd "$SLUICE_DIR" && exec setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- "$SLUICE_DIR/bin/sluice" -c "$SLUICE_DIR/sluice.yaml" serve) >"$WORK/sluice.log" 2>&1 &
SLUICE_PID=$!
PIDS="$PIDS $SLUICE_PID"
for port in "$ORIGIN_PORT" "$NGINX_PORT" "$SLUICE_PORT"; do
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$SLUICE_PORT/c/origin/v1/ping" >/dev/null \
  || { echo "sluice does not answer ($WORK/sluice.log)" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SLUICE_PID/stat"; }
run() {  # run TARGET -> "rps p99_ms requests"
  local url=$1; shift
  wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "$@" "$url" 2>&1 | awk '
    /Requests\/sec/ {rps=$2}
    /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000} p99=v}
    /requests in/ {n=$1}
    END {print rps, p99, n}'
}
HZ=$(getconf CLK_TCK)
targets="direct nginx sluice"
: >"$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
  order=$(echo $targets | awk -v r="$round" '{n=split($0,a," "); s=""; for(i=0;i<n;i++){s=s a[(i+r-1)%n+1] " "} print s}')
  for t in $order; do
    case $t in
      direct) res=$(run "http://127.0.0.1:$ORIGIN_PORT/v1/ping") ;;
      nginx)  res=$(run "http://127.0.0.1:$NGINX_PORT/v1/ping") ;;
      sluice) before=$(cpu_ticks)
              res=$(run "http://127.0.0.1:$SLUICE_PORT/c/origin/v1/ping" -H "Authorization: Bearer $TOKEN")
              after=$(cpu_ticks)
              res="$res $(( after - before ))" ;;
    esac
    echo "$round $t $res" >>"$WORK/results"
  done
done
python3 - "$WORK/results" "$HZ" <<'PYTHON'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
hz = int(sys.argv[2])
by = {}
for r in rows:
    by.setdefault(r[1], []).append(r)
print(f"{'target':8} {'req/s (median)':>15} {'p99 ms (median)':>16}")
for t in ("direct", "nginx", "sluice"):
    rs = by.get(t, [])
    print(f"{t:8} {statistics.median(float(r[2]) for r in rs):15.0f} {statistics.median(float(r[3]) for r in rs):16.2f}")
ratios = []
for rnd in sorted({r[0] for r in rows}):
    s = [r for r in by["sluice"] if r[0] == rnd][0]
    n = [r for r in by["nginx"] if r[0] == rnd][0]
    ratios.append(float(s[2]) / float(n[2]))
print(f"sluice / nginx req/s: {statistics.median(ratios):.2f} (per round: {', '.join(f'{x:.2f}' for x in ratios)})")
cpu = [int(r[5]) / hz * 1e6 / int(r[4]) for r in by["sluice"]]
print(f"sluice CPU per request: {statistics.median(cpu):.0f} us (median over rounds)")
PYTHON
