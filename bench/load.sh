#!/usr/bin/env bash
# load.sh -- many concurrent agent sessions for minutes: errors, latency, and whether the
# gateway's memory and file descriptors stay flat.
#
# Starts a throw-away PostgreSQL 15 (max_connections SESSIONS + 50: the gateway holds an
# upstream session per agent session) and one Sluice gateway in front of it as $RUN_AS
# (SQLite store, recording on, the defaults), with a policy that allows reads of
# load_items and load_customers, masks load_customers.email, and refuses DELETE. Then the
# probe crates/bench/src/bin/load.rs opens $SESSIONS sessions (each authenticating with
# its token) that run a mix of allowed (60%), masked (20%) and refused (20%) statements,
# THINK_MS apart, for $SECONDS, and reports statements, errors, p50/p99 latency and the
# gateway's VmRSS and open file descriptors every 10 s.
#
# Usage: bench/load.sh        (as root; SECONDS plus about a minute)
# Knobs: SESSIONS=1000 SECONDS=300 THINK_MS=200 RUN_AS=pgrun PG_PORT=55482 SLUICE_PORT=56560
#        PGBIN=/usr/lib/postgresql/15/bin WORK=${TMPDIR:-/tmp}/pg-load-bench SLUICE_BIN=<path>
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SESSIONS=${SESSIONS:-1000}
RUN_SECONDS=${SECONDS_TO_RUN:-${LOAD_SECONDS:-300}}
THINK_MS=${THINK_MS:-200}
RUN_AS=${RUN_AS:-pgrun}
PG_PORT=${PG_PORT:-55482}
SLUICE_PORT=${SLUICE_PORT:-56560}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
WORK=${WORK:-${TMPDIR:-/tmp}/pg-load-bench}
PGDATA=$WORK/pgdata
SLUICE_DIR=$WORK/sluice
export RUST_LOG=${RUST_LOG:-warn} NO_COLOR=1
export PG_MAX_CONNECTIONS=$((SESSIONS + 50))

# shellcheck source=bench/sluice_env.sh
. "$HERE/sluice_env.sh"

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for p in "$PG_PORT" "$SLUICE_PORT"; do
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { echo "port $p already in use" >&2; exit 1; }
done
# Two sockets per session in the gateway, one in the probe: more than the usual 1024.
ulimit -n "$(ulimit -Hn)" || { echo "cannot raise the open-file limit" >&2; exit 1; }
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((SESSIONS * 3 + 100)) ] || { echo "the open-file limit ($(ulimit -n)) is too low for $SESSIONS sessions" >&2; exit 1; }
ensure_run_as || exit 1
# Always the current source (the `limits:` block is newer than some release binaries).
PROBE_DIR=${CARGO_TARGET_DIR:-/work/target-bench}/release
(cd "$SLUICE_REPO" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-bench} cargo build --release -q -p sluice -p sluice-bench --bin sluice --bin load >&2) || exit 1
BIN=${SLUICE_BIN:-$PROBE_DIR/sluice}

PG_PID="" GW_PID=""
cleanup() {
  [ -n "$GW_PID" ] && kill -TERM "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
  [ -n "$PG_PID" ] && kill -INT "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_bench_postgres
psql_local -d bench \
  -c "create table load_items (id int primary key, note text)" \
  -c "insert into load_items select g, 'item ' || g from generate_series(1, 1000) g" \
  -c "create table load_customers (id int primary key, email text)" \
  -c "insert into load_customers select g, 'user' || g || '@customers.example' from generate_series(1, 1000) g" \
  -c "alter table load_items owner to bench" -c "alter table load_customers owner to bench" || exit 1

CONFIG=$(write_sluice_config "$BIN")
python3 - "$CONFIG" "$SESSIONS" <<'PYTHON'
import sys
path, sessions = sys.argv[1], int(sys.argv[2])
text = open(path).read()
# Every session is the same principal: let it hold them all (sluice_env.sh allows 10000).
limit = "limits: { sessions_per_principal: 10000 }"
assert limit in text, "sluice_env.sh writes the session limit"
text = text.replace(limit, "limits: { sessions_per_principal: %d }" % max(10000, sessions + 10), 1)
# Reads only (DELETE is refused), and the customers' emails masked.
text = text.replace("allow:\n      - { actions: [select, insert, update, delete]", "allow:\n      - { actions: [select]", 1)
text += """    mask:
      - { columns: ["public.load_customers.email"], with: email }
"""
open(path, "w").write(text)
PYTHON
TOKEN=$(issue_bench_token "$CONFIG") || exit 1

(cd "$SLUICE_DIR" && exec setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- "$SLUICE_DIR/bin/sluice" -c "$CONFIG" serve) >"$WORK/sluice.log" 2>&1 &
GW_PID=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$SLUICE_PORT") 2>/dev/null && break
  kill -0 "$GW_PID" 2>/dev/null || { echo "gateway exited ($WORK/sluice.log)" >&2; GW_PID=""; exit 1; }
  sleep 0.1
done
# setpriv runs the gateway in place of the subshell: GW_PID is the gateway itself.
echo "load: $SESSIONS sessions for ${RUN_SECONDS}s, ${THINK_MS} ms between statements"
"$PROBE_DIR/load" "127.0.0.1:$SLUICE_PORT" "$TOKEN" "$GW_PID" "$SESSIONS" "$RUN_SECONDS" "$THINK_MS" bench || exit 1
echo "rows left in load_items: $(psql_local -d bench -c 'select count(*) from load_items') (expected 1000: every DELETE refused)"
