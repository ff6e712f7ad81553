#!/usr/bin/env bash
# mask_throughput.sh -- MB/s of a 100,000-row, 6-column result with masking on.
#
# Starts a throw-away PostgreSQL 15 (scram-sha-256, role bench / benchpw, database bench),
# PgBouncer 1.x in session mode and Sluice in front of it (the config of
# bench/sluice_env.sh plus one masking policy), all as $RUN_AS, and loads
#   people(id int, name text, email text, card text, note text, amount numeric)
# with 100,000 rows. Then, round by round with the order rotated, each target runs
# `SELECT * FROM people` QUERIES times in one psql session (-At, output to /dev/null; the
# login is inside the timing but small next to the queries):
#   pgbouncer       PgBouncer, session mode: the bytes as PostgreSQL sends them;
#   sluice          Sluice, role bench: every statement judged, no masks;
#   sluice-masked   Sluice, role bench-masked: email masked (email), card masked (last4),
#                   and the credit_card detector scanning every text value.
# It reports per target the median over rounds of ms per query, MB/s (the result's text
# size, as `COPY (SELECT * FROM people) TO STDOUT` writes it, over the time per query) and
# the proxy's CPU ms per query (utime+stime from /proc over the round).
#
# Usage: bench/mask_throughput.sh        (as root; about 2 minutes)
# Knobs: ROUNDS=5 QUERIES=5 RUN_AS=pgrun PG_PORT=55452 PGB_PORT=56452 SLUICE_PORT=56520
#        PGBIN=/usr/lib/postgresql/15/bin WORK=${TMPDIR:-/tmp}/pg-mask-bench SLUICE_BIN=<path>
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-5}
QUERIES=${QUERIES:-5}
RUN_AS=${RUN_AS:-pgrun}
PG_PORT=${PG_PORT:-55452}
PGB_PORT=${PGB_PORT:-56452}
SLUICE_PORT=${SLUICE_PORT:-56520}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
WORK=${WORK:-${TMPDIR:-/tmp}/pg-mask-bench}
SLUICE_DIR=$WORK/sluice
PGDATA=$WORK/pgdata
export RUST_LOG=${RUST_LOG:-info} NO_COLOR=1

# shellcheck source=bench/sluice_env.sh
# The relay itself, as in the figures of bench/README.md; recording has its own benchmark.
export SLUICE_RECORDING=${SLUICE_RECORDING:-off}
. "$HERE/sluice_env.sh"

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -x /usr/sbin/pgbouncer ] || { apt-get install -y -qq pgbouncer >/dev/null 2>&1 || { echo "cannot install pgbouncer" >&2; exit 1; }; }
for p in "$PG_PORT" "$PGB_PORT" "$SLUICE_PORT"; do
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { echo "port $p already in use" >&2; exit 1; }
done
ensure_run_as || exit 1
BIN=$(find_sluice_bin) || exit 1

PG_PID="" SL_PID="" PGB_PID=""
cleanup() {
  [ -n "$SL_PID" ] && kill -TERM "$SL_PID" 2>/dev/null && wait "$SL_PID" 2>/dev/null
  [ -n "$PGB_PID" ] && kill -TERM "$PGB_PID" 2>/dev/null && wait "$PGB_PID" 2>/dev/null
  [ -n "$PG_PID" ] && kill -INT "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_bench_postgres "$WORK/pgbouncer"
psql_local -d bench -U bench -c "
  CREATE TABLE people AS SELECT g AS id, 'Person number ' || g AS name,
    'user' || g || '@example.com' AS email, '4111111111111111' AS card,
    'a free-text note about customer ' || g || ', nothing secret in it' AS note,
    (g * 1.5)::numeric(12,2) AS amount
  FROM generate_series(1, 100000) g; ANALYZE people;" || exit 1
BYTES=$(psql_local -d bench -c "COPY (SELECT * FROM people) TO STDOUT" | wc -c)
SCRAM=$(psql_local -d postgres -c "select rolpassword from pg_authid where rolname = 'bench'")

printf '"bench" "%s"\n' "$SCRAM" >"$WORK/pgbouncer/userlist.txt"
cat >"$WORK/pgbouncer/pgbouncer.ini" <<EOF
[databases]
bench_sess = host=127.0.0.1 port=$PG_PORT dbname=bench pool_mode=session
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/pgbouncer/userlist.txt
logfile = $WORK/pgbouncer/pgbouncer.log
EOF
chown -R "$RUN_AS": "$WORK/pgbouncer"; chmod 600 "$WORK/pgbouncer/userlist.txt"
setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- /usr/sbin/pgbouncer "$WORK/pgbouncer/pgbouncer.ini" >"$WORK/pgbouncer.out" 2>&1 &
PGB_PID=$!

CONFIG=$(write_sluice_config "$BIN") || exit 1
cat >>"$CONFIG" <<'EOF'
  - name: bench-masked
    match: { roles: [bench-masked] }
    connections: [bench]
    allow:
      - { actions: [select], tables: ["public.*"] }
    mask:
      - { columns: ["public.people.email"], with: email }
      - { columns: ["public.people.card"], with: last4 }
      - { detect: [credit_card], with: redact }
EOF
TOKEN=$(issue_bench_token "$CONFIG") || exit 1
TOKEN_MASKED=$(cd "$SLUICE_DIR" && as_run_as "$SLUICE_DIR/bin/sluice" -c "$CONFIG" token issue --subject bench --roles bench-masked --ttl 24h) || exit 1
(cd "$SLUICE_DIR" && exec setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- \
  "$SLUICE_DIR/bin/sluice" -c "$CONFIG" serve) >"$WORK/sluice.log" 2>&1 &
SL_PID=$!
for port in "$PGB_PORT" "$SLUICE_PORT"; do
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

conninfo() {
  case $1 in
    pgbouncer) echo "host=127.0.0.1 port=$PGB_PORT dbname=bench_sess user=bench password=benchpw" ;;
    sluice) echo "host=127.0.0.1 port=$SLUICE_PORT dbname=bench user=bench password=$TOKEN" ;;
    sluice-masked) echo "host=127.0.0.1 port=$SLUICE_PORT dbname=bench user=bench password=$TOKEN_MASKED" ;;
  esac
}
pid_of() { case $1 in pgbouncer) echo "$PGB_PID" ;; *) echo "$SL_PID" ;; esac; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# Masked output really is masked (and unmasked output is not): checked once.
psql "$(conninfo sluice-masked)" -Atc "SELECT email, card FROM people WHERE id = 7" | grep -qx 'u\*\*\*@example.com|\*\*\*\*\*\*\*\*\*\*\*\*1111' \
  || { echo "masking is not in effect" >&2; exit 1; }

echo "date: $(date -Is); sluice $("$BIN" --version 2>/dev/null); result text $BYTES bytes; ROUNDS=$ROUNDS QUERIES=$QUERIES; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
TARGETS=(pgbouncer sluice sluice-masked)
: >"$WORK/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
  for k in 0 1 2; do
    target=${TARGETS[$(((k + round) % 3))]}
    pid=$(pid_of "$target")
    # One session (logged in before the clock starts), QUERIES statements.
    args=(); for _ in $(seq 1 "$QUERIES"); do args+=(-c "SELECT * FROM people"); done
    c0=$(cpu_ticks "$pid"); t0=$(date +%s%N)
    psql "$(conninfo "$target")" -At "${args[@]}" >/dev/null || { echo "$target failed" >&2; exit 1; }
    t1=$(date +%s%N); c1=$(cpu_ticks "$pid")
    printf '%s\t%s\t%s\t%s\n' "$round" "$target" "$(( (t1 - t0) / QUERIES / 1000 ))" "$(( (c1 - c0) * 1000000 / TICK / QUERIES ))" >>"$WORK/results.tsv"
  done
done
python3 - "$WORK/results.tsv" "$BYTES" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
size = int(sys.argv[2])
print(f"\n| target | ms/query | MB/s | proxy CPU ms/query |\n| --- | --- | --- | --- |")
for target in ("pgbouncer", "sluice", "sluice-masked"):
    us = [int(r[2]) for r in rows if r[1] == target]
    cpu = [int(r[3]) for r in rows if r[1] == target]
    ms = statistics.median(us) / 1000
    print(f"| {target} | {ms:.1f} [{min(us)/1000:.1f}-{max(us)/1000:.1f}] | {size / 1e6 / (ms / 1000):.1f} | {statistics.median(cpu)/1000:.1f} [{min(cpu)/1000:.1f}-{max(cpu)/1000:.1f}] |")
by_round = {}
for r in rows:
    by_round.setdefault(r[0], {})[r[1]] = int(r[2])
ratio = lambda a, b: statistics.median(v[a] / v[b] for v in by_round.values())
print(f"\nthroughput ratios (median of per-round ratios): sluice-masked / sluice {ratio('sluice', 'sluice-masked'):.2f}, "
      f"sluice-masked / pgbouncer {ratio('pgbouncer', 'sluice-masked'):.2f}, sluice / pgbouncer {ratio('pgbouncer', 'sluice'):.2f}")
PY
echo "gateway log: $WORK/sluice.log ($(grep -cE ' (WARN|ERROR) ' "$WORK/sluice.log") warnings/errors)"
