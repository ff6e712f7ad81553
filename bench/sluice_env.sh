# Sourced by bench/pg_proxy.sh and bench/idle_sessions.sh: the Sluice side of the
# PostgreSQL benchmarks (binary, config, token). Not meant to be run on its own.
#
# Needs: RUN_AS, PG_PORT, SLUICE_PORT, SLUICE_DIR set by the caller.
# Provides: as_run_as, ensure_run_as, find_sluice_bin, write_sluice_config, issue_bench_token,
# start_bench_postgres, psql_local.

SLUICE_REPO=${SLUICE_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

as_run_as() { setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- "$@"; }

ensure_run_as() {
  id "$RUN_AS" >/dev/null 2>&1 || useradd -m -s /bin/bash "$RUN_AS" || { echo "cannot create user $RUN_AS" >&2; return 1; }
}

# The release binary: $SLUICE_BIN, else the bench target dir, else the repo's target dir.
# Built (release, one cargo) when none exists and SLUICE_BUILD=1 (default).
find_sluice_bin() {
  local c
  for c in "${SLUICE_BIN:-}" "${CARGO_TARGET_DIR:-/work/target-bench}/release/sluice" "$SLUICE_REPO/target/release/sluice"; do
    [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
  done
  if [ "${SLUICE_BUILD:-1}" = 1 ]; then
    echo "building sluice (release) into ${CARGO_TARGET_DIR:-/work/target-bench}" >&2
    (cd "$SLUICE_REPO" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-bench} cargo build --release -p sluice >&2) || return 1
    echo "${CARGO_TARGET_DIR:-/work/target-bench}/release/sluice"; return 0
  fi
  echo "no sluice binary: set SLUICE_BIN or build with CARGO_TARGET_DIR=/work/target-bench cargo build --release -p sluice" >&2
  return 1
}

# write_sluice_config BIN: a fresh $SLUICE_DIR owned by $RUN_AS, with a copy of the binary
# (so $RUN_AS can run it whatever the permissions of the build dir), the upstream password
# file, the data dir (SQLite store, local issuer key) and sluice.yaml. Echoes the config path.
# SLUICE_RECORDING=off writes `recording: { enabled: false }` (the data-path and masking
# benchmarks compare the relay itself; bench/recording_overhead.sh measures recording).
write_sluice_config() {
  local bin=$1
  rm -rf "$SLUICE_DIR"
  mkdir -p "$SLUICE_DIR/data" "$SLUICE_DIR/bin"
  install -m 755 "$bin" "$SLUICE_DIR/bin/sluice"
  printf 'benchpw\n' >"$SLUICE_DIR/pg-password"
  chmod 600 "$SLUICE_DIR/pg-password"
  cat >"$SLUICE_DIR/sluice.yaml" <<EOF
# Written by bench/sluice_env.sh: the gateway in front of the benchmark's PostgreSQL.
listen:
  postgres: 127.0.0.1:$SLUICE_PORT
store: sqlite://$SLUICE_DIR/data/sluice.db
data_dir: $SLUICE_DIR/data
$( [ "${SLUICE_RECORDING:-on}" = off ] && echo 'recording: { enabled: false }' )
# Every benchmark session is the one principal bench; idle_sessions.sh holds 200 at once.
limits: { sessions_per_principal: 10000 }
identity:
  providers:
    - { name: local, local: {} }
connections:
  - name: bench
    kind: postgres
    upstream: postgres://bench@127.0.0.1:$PG_PORT/bench
    password: { file: $SLUICE_DIR/pg-password }
policies:
  # Everything pgbench -S, the large SELECT and SELECT 1 need (and the usual DML), plus
  # reads of pg_catalog for pgbench's start-up probe of pgbench_accounts' partitioning
  # (refused otherwise; pgbench ignores the error). Every statement is still parsed,
  # classified and judged against this policy.
  - name: bench-all
    match: { roles: [bench] }
    connections: [bench]
    allow:
      - { actions: [select, insert, update, delete], tables: ["public.*"] }
      - { actions: [select], tables: ["pg_catalog.*"] }
EOF
  chown -R "$RUN_AS": "$SLUICE_DIR"
  chmod 755 "$SLUICE_DIR"
  echo "$SLUICE_DIR/sluice.yaml"
}

# issue_bench_token CONFIG: a 24 h token for subject bench, role bench (as $RUN_AS, so the
# local issuer key it creates belongs to the user the gateway runs as).
issue_bench_token() {
  (cd "$SLUICE_DIR" && as_run_as "$SLUICE_DIR/bin/sluice" -c "$1" token issue --subject bench --roles bench --ttl 24h)
}

# start_bench_postgres: a fresh $WORK (any extra folders named as arguments are made too,
# owned by $RUN_AS) and a throw-away PostgreSQL in $PGDATA from $PGBIN as $RUN_AS, on
# 127.0.0.1:$PG_PORT (scram-sha-256) and a socket in $WORK/sock, with role bench / benchpw
# and database bench. Sets PG_PID; exits the script if PostgreSQL does not come up.
start_bench_postgres() {
  rm -rf "$WORK"; mkdir -p "$PGDATA" "$WORK/sock" "$@"; chmod 755 "$WORK"
  chown "$RUN_AS": "$PGDATA" "$WORK/sock" "$@"; chmod 700 "$PGDATA"
  as_run_as "$PGBIN/initdb" -D "$PGDATA" -U "$RUN_AS" --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 || { echo "initdb failed ($WORK/initdb.log)" >&2; exit 1; }
  printf '%s\n' "listen_addresses = '127.0.0.1'" "port = $PG_PORT" "unix_socket_directories = '$WORK/sock'" \
    "password_encryption = 'scram-sha-256'" "max_connections = ${PG_MAX_CONNECTIONS:-100}" >>"$PGDATA/postgresql.conf"
  setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- "$PGBIN/postgres" -D "$PGDATA" >"$WORK/postgres.log" 2>&1 &
  PG_PID=$!
  for _ in $(seq 1 100); do
    psql_local -d postgres -c 'select 1' >/dev/null 2>&1 && break
    kill -0 "$PG_PID" 2>/dev/null || { echo "postgres exited" >&2; PG_PID=""; exit 1; }
    sleep 0.2
  done
  psql_local -d postgres -c "create role bench login password 'benchpw'" -c "create database bench owner bench" || exit 1
}

# psql_local ARGS: psql as $RUN_AS over the benchmark PostgreSQL's socket.
psql_local() { as_run_as "$PGBIN/psql" -h "$WORK/sock" -p "$PG_PORT" -v ON_ERROR_STOP=1 -Atq "$@"; }
