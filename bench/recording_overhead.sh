#!/usr/bin/env bash
# recording_overhead.sh -- pgbench -S through Sluice with recording on against recording
# off, interleaved in one run.
#
# Starts a throw-away PostgreSQL 15 (scram-sha-256, role bench / benchpw, database bench,
# pgbench -i at scale $SCALE) and two Sluice gateways in front of it, both with the config
# of bench/sluice_env.sh, as $RUN_AS:
#   sluice-rec    recording on (the default: every request durable before its result
#                 completes, results capped at 1,000 rows / 1 MiB, SQLite store);
#   sluice-norec  `recording: { enabled: false }`.
# Then, round by round with the order rotated, each target runs pgbench -S in every mode of
# $MODES for $SECONDS s with $CLIENTS clients. It reports per target and mode the median tps
# over rounds and the gateway's CPU µs per transaction (utime+stime from /proc over the
# run), the recorded/unrecorded ratios (median of per-round ratios), and the number of
# events the recording gateway stored.
#
# Usage: bench/recording_overhead.sh        (as root; about 4 minutes with the defaults)
# Knobs: ROUNDS=5 SECONDS=10 CLIENTS=8 MODES="simple prepared" SCALE=10 RUN_AS=pgrun
#        PG_PORT=55462 SLUICE_PORT=56530 (and +1) PGBIN=/usr/lib/postgresql/15/bin
#        WORK=${TMPDIR:-/tmp}/pg-recording-bench SLUICE_BIN=<path>
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-5}
SECONDS_PER_RUN=${SECONDS:-10}
CLIENTS=${CLIENTS:-8}
MODES=${MODES:-simple prepared}
SCALE=${SCALE:-10}
RUN_AS=${RUN_AS:-pgrun}
PG_PORT=${PG_PORT:-55462}
REC_PORT=${SLUICE_PORT:-56530}
NOREC_PORT=$((REC_PORT + 1))
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
WORK=${WORK:-${TMPDIR:-/tmp}/pg-recording-bench}
PGDATA=$WORK/pgdata
export RUST_LOG=${RUST_LOG:-info} NO_COLOR=1

# shellcheck source=bench/sluice_env.sh
export SLUICE_RECORDING=on  # each gateway says for itself
. "$HERE/sluice_env.sh"

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for p in "$PG_PORT" "$REC_PORT" "$NOREC_PORT"; do
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { echo "port $p already in use" >&2; exit 1; }
done
ensure_run_as || exit 1
BIN=$(find_sluice_bin) || exit 1

PG_PID="" REC_PID="" NOREC_PID=""
cleanup() {
  for pid in "$REC_PID" "$NOREC_PID"; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  [ -n "$PG_PID" ] && kill -INT "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_bench_postgres
as_run_as "$PGBIN/pgbench" -h "$WORK/sock" -p "$PG_PORT" -U bench -i -s "$SCALE" -q bench >"$WORK/pgbench-init.log" 2>&1 \
  || { echo "pgbench -i failed ($WORK/pgbench-init.log)" >&2; exit 1; }

start_gateway() { # NAME PORT EXTRA-CONFIG; prints "PID TOKEN CONFIG"
  SLUICE_DIR=$WORK/$1 SLUICE_PORT=$2
  local config; config=$(write_sluice_config "$BIN") || exit 1
  printf '%s\n' "$3" >>"$config"
  local token; token=$(issue_bench_token "$config") || exit 1
  (cd "$SLUICE_DIR" && exec setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- \
    "$SLUICE_DIR/bin/sluice" -c "$config" serve) >"$WORK/$1.log" 2>&1 &
  echo "$! $token $config"
}
read -r REC_PID TOKEN_REC CONFIG_REC <<<"$(start_gateway sluice-rec "$REC_PORT" "")"
read -r NOREC_PID TOKEN_NOREC _ <<<"$(start_gateway sluice-norec "$NOREC_PORT" "recording: { enabled: false }")"
for port in "$REC_PORT" "$NOREC_PORT"; do
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

conninfo() {
  case $1 in
    sluice-rec) echo "host=127.0.0.1 port=$REC_PORT dbname=bench user=bench password=$TOKEN_REC" ;;
    sluice-norec) echo "host=127.0.0.1 port=$NOREC_PORT dbname=bench user=bench password=$TOKEN_NOREC" ;;
  esac
}
pid_of() { case $1 in sluice-rec) echo "$REC_PID" ;; *) echo "$NOREC_PID" ;; esac; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

echo "date: $(date -Is); sluice $("$BIN" --version 2>/dev/null); ROUNDS=$ROUNDS SECONDS=$SECONDS_PER_RUN CLIENTS=$CLIENTS MODES=$MODES SCALE=$SCALE; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
TARGETS=(sluice-rec sluice-norec)
: >"$WORK/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    for k in 0 1; do
      target=${TARGETS[$(((k + round) % 2))]}
      pid=$(pid_of "$target")
      c0=$(cpu_ticks "$pid")
      out=$("$PGBIN/pgbench" -n -S -M "$mode" -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" "$(conninfo "$target")" 2>&1) \
        || { echo "$target $mode failed: $out" >&2; exit 1; }
      c1=$(cpu_ticks "$pid")
      tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
      tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
      printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$target" "$mode" "$tps" "$(( (c1 - c0) * 1000000 / TICK / tx ))" >>"$WORK/results.tsv"
    done
  done
done
python3 - "$WORK/results.tsv" "$MODES" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
print("\n| mode | target | tps (median [min-max]) | gateway CPU us/tx |\n| --- | --- | --- | --- |")
for mode in sys.argv[2].split():
    for target in ("sluice-rec", "sluice-norec"):
        tps = [float(r[3]) for r in rows if r[1] == target and r[2] == mode]
        cpu = [int(r[4]) for r in rows if r[1] == target and r[2] == mode]
        print(f"| {mode} | {target} | {statistics.median(tps):.0f} [{min(tps):.0f}-{max(tps):.0f}] | {statistics.median(cpu)} [{min(cpu)}-{max(cpu)}] |")
for mode in sys.argv[2].split():
    by_round = {}
    for r in rows:
        if r[2] == mode:
            by_round.setdefault(r[0], {})[r[1]] = (float(r[3]), int(r[4]))
    tps = statistics.median(v["sluice-rec"][0] / v["sluice-norec"][0] for v in by_round.values())
    cpu = statistics.median(v["sluice-rec"][1] / v["sluice-norec"][1] for v in by_round.values())
    print(f"{mode}: recorded/unrecorded throughput {tps:.2f} (goal >= 0.95), CPU per tx {cpu:.2f}x")
PY
kill -TERM "$REC_PID" 2>/dev/null && wait "$REC_PID" 2>/dev/null; REC_PID=""
echo "events recorded: $(cd "$WORK/sluice-rec" && as_run_as "$WORK/sluice-rec/bin/sluice" -c "$CONFIG_REC" sessions export --format jsonl | wc -l)"
echo "gateway logs: $WORK/sluice-rec.log $WORK/sluice-norec.log ($(cat "$WORK"/sluice-*.log | grep -cE ' (WARN|ERROR) ') warnings/errors)"
