#!/usr/bin/env bash
# approval_latency.sh -- how long a held statement takes to run once a person approves it.
#
# Starts a throw-away PostgreSQL 15 (scram-sha-256, role bench / benchpw, database bench)
# and one Sluice gateway in front of it as $RUN_AS, with an admin listener and a policy that
# holds `UPDATE approval_bench` for the group `bench-approvers` (SQLite store, recording on:
# the defaults). Then the probe crates/bench/src/bin/approval_latency.rs, as an agent on
# the raw PostgreSQL protocol, sends the held statement $COUNT times in one session; each
# time it waits for the gateway's NoticeResponse and approves the request through
# POST /api/v1/approvals/{id}/approve with a person's token. It reports, over the $COUNT
# approvals, the time from the approve call returning to the held statement's first result
# byte reaching the agent (median, p90, min, max), and the approve call itself.
#
# Usage: bench/approval_latency.sh        (as root; well under a minute)
# Knobs: COUNT=50 RUN_AS=pgrun PG_PORT=55472 SLUICE_PORT=56540 (admin: +1)
#        PGBIN=/usr/lib/postgresql/15/bin WORK=${TMPDIR:-/tmp}/pg-approval-bench SLUICE_BIN=<path>
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COUNT=${COUNT:-50}
RUN_AS=${RUN_AS:-pgrun}
PG_PORT=${PG_PORT:-55472}
SLUICE_PORT=${SLUICE_PORT:-56540}
ADMIN_PORT=$((SLUICE_PORT + 1))
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
WORK=${WORK:-${TMPDIR:-/tmp}/pg-approval-bench}
PGDATA=$WORK/pgdata
SLUICE_DIR=$WORK/sluice
export RUST_LOG=${RUST_LOG:-warn} NO_COLOR=1

# shellcheck source=bench/sluice_env.sh
. "$HERE/sluice_env.sh"

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for p in "$PG_PORT" "$SLUICE_PORT" "$ADMIN_PORT"; do
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { echo "port $p already in use" >&2; exit 1; }
done
ensure_run_as || exit 1
BIN=$(find_sluice_bin) || exit 1
PROBE_DIR=${CARGO_TARGET_DIR:-/work/target-bench}/release
if [ ! -x "$PROBE_DIR/approval_latency" ]; then
  (cd "$SLUICE_REPO" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-bench} cargo build --release -p sluice-bench --bin approval_latency >&2) || exit 1
fi

PG_PID="" GW_PID=""
cleanup() {
  [ -n "$GW_PID" ] && kill -TERM "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
  [ -n "$PG_PID" ] && kill -INT "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_bench_postgres
psql_local -d bench -c "create table approval_bench (id int primary key, n int)" \
  -c "insert into approval_bench values (1, 0)" -c "alter table approval_bench owner to bench" || exit 1

CONFIG=$(write_sluice_config "$BIN")
python3 - "$CONFIG" "$ADMIN_PORT" <<'PYTHON'
import sys
path, admin = sys.argv[1], sys.argv[2]
text = open(path).read()
text = text.replace("listen:\n", "listen:\n  admin: 127.0.0.1:%s\n" % admin, 1)
text += """  - name: bench-approvals
    match: { roles: [bench] }
    connections: [bench]
    approve:
      - { actions: [update], tables: ["public.approval_bench"], approvers: { groups: [bench-approvers] }, mode: hold, timeout: 1m }
"""
# The bench-all policy allows updates outright; this benchmark needs them held.
text = text.replace("allow:\n      - { actions: [select, insert, update, delete]", "allow:\n      - { actions: [select, insert, delete]", 1)
open(path, "w").write(text)
PYTHON
AGENT=$(issue_bench_token "$CONFIG") || exit 1
APPROVER=$(cd "$SLUICE_DIR" && as_run_as "$SLUICE_DIR/bin/sluice" -c "$CONFIG" token issue --subject approver --groups bench-approvers --user --ttl 1h) || exit 1

(cd "$SLUICE_DIR" && exec setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- "$SLUICE_DIR/bin/sluice" -c "$CONFIG" serve) >"$WORK/sluice.log" 2>&1 &
GW_PID=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$ADMIN_PORT") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$SLUICE_PORT") 2>/dev/null && break
  kill -0 "$GW_PID" 2>/dev/null || { echo "gateway exited ($WORK/sluice.log)" >&2; GW_PID=""; exit 1; }
  sleep 0.1
done

echo "approval latency: $COUNT held statements, each approved through the admin API"
"$PROBE_DIR/approval_latency" "127.0.0.1:$SLUICE_PORT" "http://127.0.0.1:$ADMIN_PORT" "$AGENT" "$APPROVER" "$COUNT" bench || exit 1
echo "updates run: $(psql_local -d bench -c 'select n from approval_bench where id = 1') (expected $COUNT)"
