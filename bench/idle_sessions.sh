#!/usr/bin/env bash
# idle_sessions.sh -- resident memory of Sluice per idle PostgreSQL session.
#
# Starts a throw-away PostgreSQL 15 (127.0.0.1:$PG_PORT, scram-sha-256, role bench /
# benchpw, database bench) and Sluice in front of it (the same config as bench/pg_proxy.sh,
# bench/sluice_env.sh), both as $RUN_AS. Then a small raw-protocol client (python3, no
# libpq: one socket per session, no client processes) does:
#   1. one warm-up session: log in, SELECT 1, leave (one-time allocations: token cache,
#      classifier, runtime);                                  VmRSS -> "before"
#   2. opens N sessions (startup, token as the password, up to ReadyForQuery) and keeps
#      them open, idle;                                       VmRSS -> "after login"
#   3. runs SELECT 1 once in every one of them, then idle;    VmRSS -> "after 1 query"
#   4. closes them all;                                       VmRSS -> "after close"
#   5. WAVES-1 more waves of opening N sessions and closing them: is what step 4 kept
#      reused (RSS levels off), or does every wave add to it (a leak)?
# and reports (after - before) / N in KiB, from VmRSS (and RssAnon) of the sluice process
# in /proc/PID/status. Every session is a real one: Sluice holds an upstream PostgreSQL
# session for each (max_connections is N + 50).
#
# Usage: bench/idle_sessions.sh          (as root; about 40 s)
# Knobs: N=200 RUN_AS=pgrun PG_PORT=55442 SLUICE_PORT=56510 PGBIN=/usr/lib/postgresql/15/bin
#        WORK=${TMPDIR:-/tmp}/pg-idle-bench SLUICE_BIN=<path> SETTLE=2 (seconds before a reading)
#        WAVES=4
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${N:-200}
RUN_AS=${RUN_AS:-pgrun}
PG_PORT=${PG_PORT:-55442}
SLUICE_PORT=${SLUICE_PORT:-56510}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
WORK=${WORK:-${TMPDIR:-/tmp}/pg-idle-bench}
SETTLE=${SETTLE:-2}
WAVES=${WAVES:-4}
SLUICE_DIR=$WORK/sluice
PGDATA=$WORK/pgdata
export RUST_LOG=${RUST_LOG:-info} NO_COLOR=1

# shellcheck source=bench/sluice_env.sh
# The relay itself, as in the figures of bench/README.md; recording has its own benchmark.
export SLUICE_RECORDING=${SLUICE_RECORDING:-off}
. "$HERE/sluice_env.sh"

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for p in "$PG_PORT" "$SLUICE_PORT"; do
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { echo "port $p already in use" >&2; exit 1; }
done
ensure_run_as || exit 1
BIN=$(find_sluice_bin) || exit 1

PG_PID="" SL_PID=""
cleanup() {
  [ -n "$SL_PID" ] && kill -TERM "$SL_PID" 2>/dev/null && wait "$SL_PID" 2>/dev/null
  [ -n "$PG_PID" ] && kill -INT "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"; mkdir -p "$PGDATA" "$WORK/sock"; chmod 755 "$WORK"
chown "$RUN_AS": "$PGDATA" "$WORK/sock"; chmod 700 "$PGDATA"
printf 'benchpw\n' >"$WORK/pwfile"; chown "$RUN_AS": "$WORK/pwfile"
as_run_as "$PGBIN/initdb" -D "$PGDATA" -U "$RUN_AS" --auth-local=trust --auth-host=scram-sha-256 \
  -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 || { echo "initdb failed ($WORK/initdb.log)" >&2; exit 1; }
cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK/sock'
max_connections = $((N + 50))
password_encryption = 'scram-sha-256'
EOF
setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- "$PGBIN/postgres" -D "$PGDATA" >"$WORK/postgres.log" 2>&1 &
PG_PID=$!
for _ in $(seq 1 100); do
  as_run_as "$PGBIN/psql" -h "$WORK/sock" -p "$PG_PORT" -d postgres -Atqc 'select 1' >/dev/null 2>&1 && break
  kill -0 "$PG_PID" 2>/dev/null || { echo "postgres exited:" >&2; tail -3 "$WORK/postgres.log" >&2; PG_PID=""; exit 1; }
  sleep 0.2
done
as_run_as "$PGBIN/psql" -h "$WORK/sock" -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 -Atq \
  -c "create role bench login password 'benchpw'" -c "create database bench owner bench" \
  || { echo "cannot create role/database ($WORK/postgres.log)" >&2; exit 1; }

CONFIG=$(write_sluice_config "$BIN") || exit 1
TOKEN=$(issue_bench_token "$CONFIG") && [ -n "$TOKEN" ] || { echo "cannot issue a token" >&2; exit 1; }
(cd "$SLUICE_DIR" && exec setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- \
  "$SLUICE_DIR/bin/sluice" -c "$CONFIG" serve) >"$WORK/sluice.log" 2>&1 &
SL_PID=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$SLUICE_PORT") 2>/dev/null && break; sleep 0.1; done
kill -0 "$SL_PID" 2>/dev/null || { echo "sluice did not start ($WORK/sluice.log)" >&2; cat "$WORK/sluice.log" >&2; exit 1; }

echo "date: $(date -Is); sluice $("$BIN" --version 2>/dev/null) pid $SL_PID; N=$N; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$SL_PID" "$SLUICE_PORT" "$N" "$TOKEN" "$SETTLE" "$WAVES" <<'PY'
import socket, struct, sys, time
pid, port, n, token, settle, waves = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), int(sys.argv[6])

def status():
    d = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile", "Threads"):
            d[k] = int(v.split()[0])
    return d

def recv_until(s, want):
    """Read messages until one whose tag is in `want`; return that tag (E raises)."""
    buf = b""
    while True:
        while len(buf) < 5:
            c = s.recv(65536)
            if not c: raise RuntimeError("connection closed")
            buf += c
        tag, ln = buf[0:1], struct.unpack("!I", buf[1:5])[0]
        while len(buf) < 1 + ln:
            c = s.recv(65536)
            if not c: raise RuntimeError("connection closed")
            buf += c
        body, buf = buf[5:1 + ln], buf[1 + ln:]
        if tag == b"E": raise RuntimeError(body.replace(b"\0", b" ").decode(errors="replace"))
        if tag == b"R" and struct.unpack("!I", body[:4])[0] == 3:
            pw = token.encode() + b"\0"
            s.sendall(b"p" + struct.pack("!I", 4 + len(pw)) + pw)
            continue
        if tag in want: return tag

def login():
    s = socket.create_connection(("127.0.0.1", port))
    params = b"user\0bench\0database\0bench\0application_name\0idle_sessions\0\0"
    s.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
    recv_until(s, {b"Z"})
    return s

def select1(s):
    q = b"SELECT 1\0"
    s.sendall(b"Q" + struct.pack("!I", 4 + len(q)) + q)
    recv_until(s, {b"Z"})

def reading(label, base=None):
    time.sleep(settle)
    st = status()
    line = f"{label:<14} VmRSS {st['VmRSS']:>8} KiB  RssAnon {st['RssAnon']:>8} KiB  threads {st['Threads']}"
    if base is not None:
        line += f"  -> (VmRSS - before)/N = {(st['VmRSS'] - base['VmRSS']) / n:.1f} KiB, RssAnon {(st['RssAnon'] - base['RssAnon']) / n:.1f} KiB per session"
    print(line, flush=True)
    return st

start = reading("at start")
w = login(); select1(w); w.close()
before = reading("before")
t0 = time.time()
socks = [login() for _ in range(n)]
print(f"opened {n} sessions in {time.time() - t0:.2f} s", flush=True)
reading("after login", before)
for s in socks: select1(s)
reading("after 1 query", before)
for s in socks:
    s.sendall(b"X\0\0\0\4"); s.close()
reading("after close", before)
# More waves: if what the gateway kept after closing is reused, RSS stops growing.
for wave in range(2, waves + 1):
    socks = [login() for _ in range(n)]
    reading(f"wave {wave} open", before)
    for s in socks:
        s.sendall(b"X\0\0\0\4"); s.close()
    reading(f"wave {wave} closed", before)
PY
rc=$?
echo "gateway log: $WORK/sluice.log ($(grep -c 'session opened' "$WORK/sluice.log") sessions opened; $(grep -cE ' (WARN|ERROR) ' "$WORK/sluice.log") warnings/errors)"
exit $rc
