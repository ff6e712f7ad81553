#!/usr/bin/env bash
# pg_proxy.sh -- Sluice's PostgreSQL data path against direct PostgreSQL and PgBouncer
# (session pooling), interleaved in one run.
#
# A thin wrapper around the shared reference benchmark
# ($SHARED_BENCH, default /work/shared/bench/bench_pg_proxy.sh, used unmodified): that
# script starts PostgreSQL 15 (127.0.0.1:$PG_PORT) and PgBouncer, runs pgbench -S in the
# simple/extended/prepared modes, a 100,000-row SELECT and connect+SELECT 1 cycles against
# every target round by round (order rotated each round), and samples each proxy's CPU time
# from /proc. This wrapper adds Sluice as the target "sluice":
#   - writes a config to $WORK/sluice (bench/sluice_env.sh): a `kind: postgres` connection
#     `bench` to the script's PostgreSQL (user bench, password from a file), the local
#     identity provider, and an allow policy for role bench (select/insert/update/delete on
#     public.*, select on pg_catalog.* for pgbench's start-up probe); every statement is
#     still parsed, classified and judged;
#   - issues a 24 h token (subject bench, role bench) from the local issuer;
#   - starts `sluice serve` through the script's PROXY_CMD, as $RUN_AS;
#   - gives the token to libpq per target: the reference script exports PGPASSWORD=benchpw
#     for every target, so the sluice target's "database" is a conninfo string,
#     `dbname=bench password=<token>`, which pgbench and psql expand (a password in the
#     conninfo wins over PGPASSWORD). The database name selects the connection (`bench`).
# After the run it redacts the token from the results, and prints what the gateway logged
# beyond session open/close (refusals, warnings, errors).
#
# Usage: bench/pg_proxy.sh            (as root; about 8 min with the defaults)
# Knobs (besides every knob of the reference script, passed through):
#   ROUNDS=5 (the reference script's default is 3; 5 rounds of three targets take ~460 s of
#   its 570 s budget on 2 cores. Under heavy outside load the last conn rounds may not fit:
#   they are recorded as SKIP, and ROUNDS=3 takes ~280 s)
#   PGBOUNCER_TARGETS=sess (the reference script's default is "tx sess")
#   SLUICE_PORT=56500 SLUICE_BIN=<path> (default: $CARGO_TARGET_DIR or /work/target-bench,
#   release build; built if missing unless SLUICE_BUILD=0) RUST_LOG=info (the gateway's log
#   level; info logs one line per session open and close, as in production)
#   WORK=${TMPDIR:-/tmp}/pg-proxy-bench  RESULTS=$WORK/results/<timestamp>
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARED_BENCH=${SHARED_BENCH:-/work/shared/bench/bench_pg_proxy.sh}

export ROUNDS=${ROUNDS:-5}
export PGBOUNCER_TARGETS=${PGBOUNCER_TARGETS-sess}
export RUN_AS=${RUN_AS:-pgrun}
export PG_PORT=${PG_PORT:-55432}
export WORK=${WORK:-${TMPDIR:-/tmp}/pg-proxy-bench}
export RESULTS=${RESULTS:-$WORK/results/$(date +%Y%m%d-%H%M%S)}
SLUICE_PORT=${SLUICE_PORT:-56500}
SLUICE_DIR=$WORK/sluice
RUST_LOG=${RUST_LOG:-info}

# shellcheck source=bench/sluice_env.sh
# The relay itself, as in the figures of bench/README.md; recording has its own benchmark.
export SLUICE_RECORDING=${SLUICE_RECORDING:-off}
. "$HERE/sluice_env.sh"

[ "$(id -u)" = 0 ] || { echo "run as root (PostgreSQL, PgBouncer and Sluice run as $RUN_AS)" >&2; exit 1; }
[ -r "$SHARED_BENCH" ] || { echo "missing $SHARED_BENCH" >&2; exit 1; }
if [ -n "$PGBOUNCER_TARGETS" ] && [ ! -x "${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}" ]; then
  echo "installing pgbouncer" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y pgbouncer >/dev/null || exit 1
fi
(exec 3<>"/dev/tcp/127.0.0.1/$SLUICE_PORT") 2>/dev/null && { echo "port $SLUICE_PORT already in use" >&2; exit 1; }
ensure_run_as || exit 1
BIN=$(find_sluice_bin) || exit 1
mkdir -p "$WORK" && chmod 755 "$WORK"
CONFIG=$(write_sluice_config "$BIN") || exit 1
(cd "$SLUICE_DIR" && as_run_as "$SLUICE_DIR/bin/sluice" -c "$CONFIG" policy check >/dev/null) || { echo "sluice policy check failed" >&2; exit 1; }
TOKEN=$(issue_bench_token "$CONFIG") && [ -n "$TOKEN" ] || { echo "cannot issue a token" >&2; exit 1; }
case "$TOKEN" in */*|*" "*) echo "unexpected token shape (a / or space would break the target syntax)" >&2; exit 1 ;; esac
echo "sluice: $BIN ($("$BIN" --version 2>/dev/null)), config $CONFIG, listening on 127.0.0.1:$SLUICE_PORT" >&2

export PROXY_CMD="env NO_COLOR=1 RUST_LOG=$RUST_LOG $SLUICE_DIR/bin/sluice -c $CONFIG serve"
export PROXY_WAIT=127.0.0.1:$SLUICE_PORT
cd "$WORK" || exit 1
bash "$SHARED_BENCH" "sluice=127.0.0.1:$SLUICE_PORT/dbname=bench password=$TOKEN"
rc=$?

# ---- afterwards: no token in the results; what the gateway said besides open/close
if [ -d "$RESULTS" ]; then
  for f in "$RESULTS"/*.log "$RESULTS"/*.txt "$RESULTS"/*.tsv "$RESULTS"/*.md; do
    [ -f "$f" ] && sed -i "s|$TOKEN|<token>|g" "$f"
  done
  cp "$CONFIG" "$RESULTS/sluice.yaml"
  {
    echo "sluice: $("$BIN" --version 2>/dev/null) ($BIN)"
    echo "loadavg after: $(cat /proc/loadavg)"
  } >>"$RESULTS/env.txt"
  if [ -f "$RESULTS/proxy.log" ]; then
    opened=$(grep -c 'session opened' "$RESULTS/proxy.log")
    echo
    echo "## sluice gateway log ($RESULTS/proxy.log)"
    echo "sessions opened: $opened; lines other than session opened/closed and startup/shutdown:"
    # without timestamps and peer addresses, so that repeats count as one line
    sed -e 's/\x1b\[[0-9;]*m//g' "$RESULTS/proxy.log" | grep -vE 'session (opened|closed)|listener ready|shutting down|stopped' \
      | sed -E 's/^[0-9T:.Z-]+ +//; s/ peer=[0-9.:]+//' | cut -c1-400 | sort | uniq -c | sort -rn | head -20
  fi
  echo
  echo "results: $RESULTS (summary.md, results.tsv, run.log, proxy.log)"
fi
exit $rc
