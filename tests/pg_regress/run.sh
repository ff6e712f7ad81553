#!/usr/bin/env bash
# PostgreSQL's own regression suite (pg_regress, parallel_schedule) through Sluice, then
# directly, and a comparison of the two.
#
#   sudo tests/pg_regress/run.sh            # as root: it switches to the postgres OS user
#
# Too slow for the default test command (several minutes on two cores). Idempotent:
#
# - what is missing of the server, python3, dpkg-dev, gcc and libc6-dev is installed with
#   apt-get (Debian or Ubuntu; nothing is installed on a machine that has them all);
# - the regression files (sql/, expected/, data/, parallel_schedule, regress.so, refint.so,
#   autoinc.so) come from Debian's source package of the installed PostgreSQL major
#   version, fetched with deb-src lists private to $PG_REGRESS_CACHE (the system's apt
#   configuration is not touched), configured and built once (`make -C src/test/regress`);
# - each run (through Sluice, then direct) gets a fresh throw-away cluster (initdb as the
#   postgres OS user, which server-side COPY and regress.so need) on a free port, with the
#   settings pg_regress gives its own temporary instance, and a database `regression`
#   created as pg_regress would create it;
# - the gateway is built with `cargo build --release -p sluice` into $CARGO_TARGET_DIR and
#   serves one connection, named `regression` (the database name selects the connection),
#   whose upstream is that database as the superuser `postgres` with a password, under an
#   allow-all policy: every action, plus the rules that must name things literally (every
#   dangerous built-in in crates/sql/src/functions/dangerous.rs that the server has, and
#   the settings role and session_authorization);
# - pg_regress runs with --use-existing --dbname=regression, against the gateway with a
#   token from `sluice token issue` as PGPASSWORD, and directly over the cluster's socket;
#   both runs with pg_regress's own environment (PGOPTIONS, PGDATESTYLE, PGTZ), which a
#   probe first checks the gateway applies (pgoptions-probe.txt).
#
# Output (outside the repo): $PG_REGRESS_OUT/{sluice,direct}/{regression.out,regression.diffs},
# $PG_REGRESS_OUT/sluice.log (the gateway's log, RUST_LOG=info) and
# $PG_REGRESS_OUT/comparison.md (which tests fail through Sluice and not directly, and why).
#
# Environment: PG_REGRESS_CACHE (default /work/cache/pgsrc), PG_REGRESS_OUT (default
# /work/cache/pg_regress-run), CARGO_TARGET_DIR (default /work/target-regress), PG_MAJOR
# (default: the newest installed), SLUICE_BIN (a built gateway: skips the build), RUN_AS
# (default postgres), SCHEDULE (default
# parallel_schedule), ONLY (sluice or direct: run one side only; compare: only rewrite the
# comparison from the last runs).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${PG_REGRESS_CACHE:-/work/cache/pgsrc}
OUT=${PG_REGRESS_OUT:-/work/cache/pg_regress-run}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-regress}
RUN_AS=${RUN_AS:-postgres}
SCHEDULE=${SCHEDULE:-parallel_schedule}
ONLY=${ONLY:-}

log() { echo "== $*" >&2; }
as_pg() { setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- "$@"; }

[ "$(id -u)" = 0 ] || { echo "run as root (it runs the server and pg_regress as $RUN_AS)" >&2; exit 2; }

# ---------------------------------------------------------------- packages
# A fresh machine may lack any of what the script needs; each missing Debian package is
# installed with apt-get (the package lists are updated first, once: a fresh image has
# none). Installed only when missing, so a prepared machine is not touched.
APT_UPDATED=
apt_install() {
  local missing=() p
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "installing ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then
    apt-get update -qq >&2
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# The server and psql (`postgresql` is the distribution's supported major version; it also
# creates the postgres OS user), and python3 for the comparison.
if [ -n "${PG_MAJOR:-}" ]; then
  [ -x "/usr/lib/postgresql/$PG_MAJOR/bin/initdb" ] || apt_install "postgresql-$PG_MAJOR"
elif ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  apt_install postgresql
fi
command -v python3 >/dev/null || apt_install python3
PG_MAJOR=${PG_MAJOR:-$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)}
PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
[ -x "$PGBIN/initdb" ] || { echo "no PostgreSQL server binaries in $PGBIN (install postgresql-$PG_MAJOR)" >&2; exit 2; }

# ---------------------------------------------------------------- regression files
fetch_and_build_regress() {
  local src=$CACHE/src
  if [ -f "$src/src/test/regress/regress.so" ] && [ -f "$src/src/test/regress/refint.so" ]; then
    return 0
  fi
  log "fetching and building the regression files of postgresql-$PG_MAJOR into $CACHE"
  # dpkg-source (dpkg-dev, which brings make, perl, patch, bzip2 and xz-utils), a C
  # compiler and the C library headers. Neither bison nor flex: the upstream tarball has
  # the generated parser and scanner. Nor readline, zlib or ICU headers: configure runs
  # without them, and the regression libraries do not use them.
  apt_install dpkg-dev gcc libc6-dev
  mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/parts"
  local parts
  for parts in /etc/apt/sources.list.d/*.sources; do
    [ -f "$parts" ] && sed 's/^Types: deb$/Types: deb-src/' "$parts" >"$CACHE/apt/parts/$(basename "$parts")"
  done
  if [ -f /etc/apt/sources.list ]; then
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$CACHE/apt/parts/sources.list"
  fi
  local O=(-oDir::Etc::SourceList=/dev/null "-oDir::Etc::SourceParts=$CACHE/apt/parts"
           "-oDir::State::Lists=$CACHE/apt/lists")
  (cd "$CACHE" && apt-get "${O[@]}" update >/dev/null)
  # The installed version first; its source may be gone from the mirror (a security
  # update superseded on the mirror), so fall back to the other versions apt knows.
  local installed versions v got=
  installed=$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR" 2>/dev/null || true)
  versions=$(cd "$CACHE" && apt-cache "${O[@]}" showsrc "postgresql-$PG_MAJOR" | sed -n 's/^Version: //p' | sort -rV)
  for v in $installed $versions; do
    if (cd "$CACHE" && apt-get "${O[@]}" source --download-only "postgresql-$PG_MAJOR=$v" >/dev/null 2>&1); then
      got=$v; break
    fi
  done
  [ -n "$got" ] || { echo "could not download the source of postgresql-$PG_MAJOR" >&2; exit 1; }
  [ "$got" = "$installed" ] || log "note: installed server is $installed, regression files are from $got"
  echo "$got" >"$CACHE/source-version"
  rm -rf "$src"
  (cd "$CACHE" && dpkg-source -x "postgresql-${PG_MAJOR}_${got#*:}.dsc" src >/dev/null)
  (cd "$src" && ./configure --without-readline --without-zlib --without-icu \
      --prefix="/usr/lib/postgresql/$PG_MAJOR" >"$CACHE/configure.log" 2>&1)
  make -C "$src/src/test/regress" -j"$(nproc)" >"$CACHE/make.log" 2>&1
  chmod -R a+rX "$CACHE"
}

# ---------------------------------------------------------------- cluster
free_port() {
  local p
  for p in $(seq "$1" $(($1 + 200))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

PG_PID=
SLUICE_PID=
stop_all() {
  if [ -n "$SLUICE_PID" ]; then kill "$SLUICE_PID" 2>/dev/null || true; wait "$SLUICE_PID" 2>/dev/null || true; SLUICE_PID=; fi
  if [ -n "$PG_PID" ] && [ -d "$OUT/data" ]; then as_pg "$PGBIN/pg_ctl" -D "$OUT/data" -m immediate -w stop >/dev/null 2>&1 || true; PG_PID=; fi
}
trap stop_all EXIT

PG_PASSWORD=regress-superuser-pw
start_cluster() {
  stop_all
  rm -rf "$OUT/data" "$OUT/sock"
  mkdir -p "$OUT/sock" "$OUT/data"; chown "$RUN_AS": "$OUT/sock" "$OUT/data"; chmod 700 "$OUT/data"
  PG_PORT=$(free_port 55432)
  as_pg "$PGBIN/initdb" -D "$OUT/data" -U postgres -E UTF8 --locale=C \
      --auth-local=trust --auth-host=scram-sha-256 >"$OUT/initdb.log" 2>&1
  # What pg_regress adds to its own temporary instance's postgresql.conf.
  cat >>"$OUT/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$OUT/sock'
log_autovacuum_min_duration = 0
log_checkpoints = on
log_line_prefix = '%m %b[%p] %q%a '
log_lock_waits = on
log_temp_files = 128kB
max_prepared_transactions = 2
EOF
  as_pg "$PGBIN/pg_ctl" -D "$OUT/data" -l "$OUT/data/server.log" -w start >/dev/null
  PG_PID=$(head -1 "$OUT/data/postmaster.pid")
  # The database as pg_regress creates it (create_database() in pg_regress.c).
  as_pg "$PGBIN/psql" -X -q -h "$OUT/sock" -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 <<EOF
ALTER ROLE postgres PASSWORD '$PG_PASSWORD';
CREATE DATABASE regression TEMPLATE=template0 ENCODING='UTF8' LC_COLLATE='C' LC_CTYPE='C';
ALTER DATABASE regression SET lc_messages TO 'C';
ALTER DATABASE regression SET lc_monetary TO 'C';
ALTER DATABASE regression SET lc_numeric TO 'C';
ALTER DATABASE regression SET lc_time TO 'C';
ALTER DATABASE regression SET bytea_output TO 'hex';
ALTER DATABASE regression SET timezone_abbreviations TO 'Default';
EOF
}

# ---------------------------------------------------------------- gateway
build_sluice() {
  if [ -n "${SLUICE_BIN:-}" ]; then
    log "using $SLUICE_BIN"
    return 0
  fi
  log "building sluice (release) into $CARGO_TARGET_DIR"
  (cd "$REPO" && cargo build --release -p sluice >&2)
  SLUICE_BIN=$CARGO_TARGET_DIR/release/sluice
}

# Every built-in the gateway treats as dangerous (each needs a rule naming it exactly):
# the names and prefixes of dangerous.rs, expanded against the server's pg_proc.
dangerous_functions() {
  local words
  words=$(grep -o '"[a-z0-9_]*"' "$REPO/crates/sql/src/functions/dangerous.rs" | tr -d '"' | sort -u | paste -sd, -)
  as_pg "$PGBIN/psql" -X -At -h "$OUT/sock" -p "$PG_PORT" -d regression -c "
    WITH w(n) AS (SELECT unnest(string_to_array('$words', ',')))
    SELECT DISTINCT s || '.' || n FROM (
      SELECT DISTINCT p.proname AS n FROM pg_proc p JOIN w ON p.proname LIKE w.n || '%'
      UNION SELECT n FROM w) names, unnest(ARRAY['pg_catalog', 'public']) s ORDER BY 1"
}

start_sluice() {
  local dir=$OUT/gateway
  rm -rf "$dir"; mkdir -p "$dir/data"
  printf '%s\n' "$PG_PASSWORD" >"$dir/pg-password"; chmod 600 "$dir/pg-password"
  SLUICE_PORT=$(free_port 56432)
  local admin_port; admin_port=$(free_port $((SLUICE_PORT + 1)))
  local fns; fns=$(dangerous_functions | paste -sd, - | sed 's/,/, /g')
  cat >"$dir/sluice.yaml" <<EOF
# Written by tests/pg_regress/run.sh: allow-all in front of a throw-away cluster.
listen:
  postgres: 127.0.0.1:$SLUICE_PORT
  admin: 127.0.0.1:$admin_port
store: sqlite://$dir/data/sluice.db
data_dir: $dir/data
identity:
  providers:
    - { name: local, local: {} }
connections:
  - name: regression
    kind: postgres
    upstream: postgres://postgres@127.0.0.1:$PG_PORT/regression
    password: { file: $dir/pg-password }
policies:
  - name: regress-all
    match: { roles: [regress] }
    connections: [regression]
    allow:
      - actions: [select, insert, update, delete, merge, truncate, copy_out, copy_in, copy_program, ddl, grant, procedural, call, set, explain, function, lock, maintenance, notify, transaction]
      - { actions: [set], settings: [role, session_authorization] }
      - functions: [$fns]
EOF
  "$SLUICE_BIN" -c "$dir/sluice.yaml" policy check >&2
  RUST_LOG=${RUST_LOG:-info} "$SLUICE_BIN" -c "$dir/sluice.yaml" serve >"$OUT/sluice.log" 2>&1 &
  SLUICE_PID=$!
  local i
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SLUICE_PORT") 2>/dev/null && break
    kill -0 "$SLUICE_PID" 2>/dev/null || { cat "$OUT/sluice.log" >&2; exit 1; }
    sleep 0.1
  done
  TOKEN=$("$SLUICE_BIN" -c "$dir/sluice.yaml" token issue --subject pg-regress --roles regress --ttl 24h)
}

# ---------------------------------------------------------------- pg_regress
REGRESS_SRC=$CACHE/src/src/test/regress
pg_regress_bin() {
  local deb=/usr/lib/postgresql/$PG_MAJOR/lib/pgxs/src/test/regress/pg_regress
  if [ -x "$deb" ]; then echo "$deb"; else echo "$REGRESS_SRC/pg_regress"; fi
}

# run_regress NAME BINDIR HOST PORT: pg_regress as $RUN_AS, output in $OUT/NAME.
run_regress() {
  local name=$1 bindir=$2 host=$3 port=$4 dir=$OUT/$1
  rm -rf "$dir"; mkdir -p "$dir"; chown "$RUN_AS": "$dir"
  log "pg_regress ($name) against $host:$port"
  local start=$SECONDS rc=0
  (cd "$dir" && as_pg env PGPASSWORD="${PGPASSWORD_FOR_RUN:-}" PGUSER=postgres \
      "$(pg_regress_bin)" --use-existing --dbname=regression \
      --inputdir="$REGRESS_SRC" --outputdir="$dir" --dlpath="$REGRESS_SRC" \
      --bindir="$bindir" --host="$host" --port="$port" \
      --schedule="$REGRESS_SRC/$SCHEDULE" >"$dir/stdout.log" 2>&1) || rc=$?
  echo "$((SECONDS - start))" >"$dir/seconds"
  # stdout.log rather than regression.out, which pg_regress deletes when every test passed.
  log "pg_regress ($name): exit $rc, $(grep -cE '\.\.\. (FAILED|failed)' "$dir/stdout.log" || true) failed, $((SECONDS - start)) s"
}

# ---------------------------------------------------------------- main
mkdir -p "$OUT"; chmod 755 "$OUT"
fetch_and_build_regress
chmod -R a+rX "$CACHE"

if [ -z "$ONLY" ] || [ "$ONLY" = sluice ]; then
  build_sluice
  start_cluster
  start_sluice
  # pg_regress always puts `-c intervalstyle=postgres_verbose` into PGOPTIONS, which libpq
  # sends as the startup parameter `options` (and PGDATESTYLE/PGTZ as the lower-case
  # startup parameters `datestyle`/`timezone`). Probe that the gateway applies all three,
  # as pg_regress's psql will send them. If it does not, run pg_regress with a psql that
  # drops PGOPTIONS and put intervalstyle on the database instead, so the other tests
  # still say something; the probe's output in comparison.md tells which way it ran.
  regress_bindir=$PGBIN
  rm -rf "$OUT/bin-sluice"
  if ! PGOPTIONS='-c intervalstyle=postgres_verbose' PGDATESTYLE='Postgres, MDY' PGTZ=PST8PDT \
      PGPASSWORD=$TOKEN PGCONNECT_TIMEOUT=5 "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$SLUICE_PORT" \
      -U postgres -d regression -v ON_ERROR_STOP=1 \
      -c "SELECT current_setting('IntervalStyle'), current_setting('DateStyle'), current_setting('TimeZone')" \
      >"$OUT/pgoptions-probe.txt" 2>&1 \
    || ! grep -qx 'postgres_verbose|Postgres, MDY|PST8PDT' "$OUT/pgoptions-probe.txt"; then
    log "the gateway did not apply pg_regress's startup parameters: $(tr '\n' ' ' <"$OUT/pgoptions-probe.txt")"
    echo "(fallback: pg_regress ran with PGOPTIONS dropped and intervalstyle set on the database)" >>"$OUT/pgoptions-probe.txt"
    as_pg "$PGBIN/psql" -X -q -h "$OUT/sock" -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 \
      -c "ALTER DATABASE regression SET intervalstyle TO 'postgres_verbose'"
    mkdir -p "$OUT/bin-sluice"
    cat >"$OUT/bin-sluice/psql" <<EOF
#!/bin/sh
unset PGOPTIONS
exec $PGBIN/psql "\$@"
EOF
    chmod 755 "$OUT/bin-sluice/psql"
    regress_bindir=$OUT/bin-sluice
  fi
  PGPASSWORD_FOR_RUN=$TOKEN run_regress sluice "$regress_bindir" 127.0.0.1 "$SLUICE_PORT"
  cp "$OUT/data/server.log" "$OUT/sluice/server.log" 2>/dev/null || true
  stop_all
fi

if [ -z "$ONLY" ] || [ "$ONLY" = direct ]; then
  start_cluster
  PGPASSWORD_FOR_RUN= run_regress direct "$PGBIN" "$OUT/sock" "$PG_PORT"
  cp "$OUT/data/server.log" "$OUT/direct/server.log" 2>/dev/null || true
  stop_all
fi

# ---------------------------------------------------------------- comparison
python3 - "$OUT" "$(cat "$CACHE/source-version" 2>/dev/null || echo unknown)" \
  "$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR" 2>/dev/null || echo unknown)" <<'PY'
import re, sys, collections, os
out, srcver, srvver = sys.argv[1:4]
line_re = re.compile(r'^(?:test\s+|\s+)(\S+)\s+\.\.\.\s+(ok|FAILED|failed \(ignored\)|ignored)\b')

def results(name):
    res = collections.OrderedDict()
    # pg_regress deletes regression.out when every test passed; stdout.log has the same lines.
    p = os.path.join(out, name, 'regression.out')
    if not os.path.exists(p):
        p = os.path.join(out, name, 'stdout.log')
    if not os.path.exists(p):
        return res
    for line in open(p, errors='replace'):
        m = line_re.match(line)
        if m:
            res[m.group(1)] = 'ok' if m.group(2) == 'ok' else 'failed'
    return res

def diffs(name):
    d, cur = {}, None
    p = os.path.join(out, name, 'regression.diffs')
    if not os.path.exists(p):
        return d
    for line in open(p, errors='replace'):
        m = re.match(r'^diff .* \S*/expected/([^/\s]+?)(?:_\d+)?\.out ', line)
        if m:
            cur = m.group(1); d[cur] = []
        elif cur:
            d[cur].append(line.rstrip('\n'))
    return d

s, dr = results('sluice'), results('direct')
sd, dd = diffs('sluice'), diffs('direct')
only = [t for t, r in s.items() if r == 'failed' and dr.get(t) == 'ok']
both = [t for t, r in s.items() if r == 'failed' and dr.get(t) == 'failed']
direct_only = [t for t, r in dr.items() if r == 'failed' and s.get(t) == 'ok']

DATE_OLD = re.compile(r'\b\d\d-\d\d-\d{4}\b|\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d|\bP[SD]T\b')
DATE_ISO = re.compile(r'\b\d{4}-\d\d-\d\d\b|\+00(:00)?\b|\bUTC\b')

def hunks(lines):
    h = []
    for l in lines:
        if re.match(r'^(\+\+\+|---) /', l):
            continue
        if l.startswith('@@'):
            if h: yield h
            h = []
        else:
            h.append(l)
    if h: yield h

REFUSAL = re.compile(r'^(?:ERROR|FATAL):\s+sluice: (.*)')
LEXICAL = ('client_encoding', 'standard_conforming_strings', 'backslash_quote')
# psql repeating an error through its variables (\echo :SQLSTATE, :LAST_ERROR_MESSAGE, ...).
PSQL_ECHO = re.compile(r'^(?:error code|last error code|last error message): ')
SYNTAX = ('a syntax error PostgreSQL also reports comes back as "sluice: cannot parse statement: ..." '
          'with SQLSTATE 42501 instead of 42601 and without LINE/caret/HINT (message otherwise the same)')

def short(msg):
    """A short name for a refusal, for knock-ons to point at."""
    for name in LEXICAL:
        if msg.startswith(name + ' cannot'):
            return 'SET ' + name
    if 'FunctionCall' in msg:
        return 'FunctionCall'
    if msg.startswith('cannot parse statement'):
        return 'unparseable statement'
    return msg[:60]

def knock_on(earlier):
    """A difference after refusals in the same test: blamed on the first refusal that was
    not itself an unparseable statement (which are often knock-ons themselves)."""
    root = next((e for e in earlier if e != 'unparseable statement'), earlier[-1])
    return f'after an earlier refusal in this test ({root}): probably its knock-on'

def refusal_kind(msg, expected_errors, earlier):
    """The cause of one refusal the client saw, by its message, the errors expected in
    its place, and the refusals seen before it in the same test."""
    if msg.startswith('cannot parse statement'):
        text = msg[len('cannot parse statement: '):]
        # `\set VERBOSITY terse` adds "at character N" to the resource's message.
        if any(re.sub(r' at character \d+$', '', e.split(':', 1)[1].strip()) == text for e in expected_errors):
            return SYNTAX
        if any(e.startswith('SET ') for e in earlier):
            return knock_on(earlier)
        if expected_errors:
            return ('an error PostgreSQL also reports, caught first by the gateway\'s parser (pg_query, '
                    'a newer grammar than the server\'s) and worded differently')
        if earlier:
            return knock_on(earlier)
        return 'statement PostgreSQL accepts is refused by the gateway\'s parser'
    if 'is not supported by the gateway' in msg:
        m = re.search(r'statement type (\S+)', msg)
        return 'statement type not supported by the gateway: ' + (m.group(1) if m else msg)
    if 'FunctionCall' in msg:
        return 'fast-path FunctionCall message refused (psql \\lo_import/\\lo_export/\\lo_unlink use it)'
    for name in LEXICAL:
        if msg.startswith(name + ' cannot be changed'):
            return f'SET/RESET {name} refused (whatever the value)'
    return 'refused by the gateway: ' + re.sub(r'\d+', 'N', msg)

def only_qualified(minus, plus):
    """Lines that differ only by names reported schema-qualified through the gateway."""
    strip = lambda l: re.sub(r'\b[a-z_][a-z0-9_$]*\.(?=[a-z_])', '', l)
    return minus and len(minus) == len(plus) and minus != plus and \
        all(strip(p) == m for m, p in zip(minus, plus))

def blocks(lines):
    """The runs of changed lines of a diff: what one statement (or a few adjacent ones)
    printed differently."""
    for h in hunks(lines):
        b = []
        for l in h:
            if l[:1] in '+-':
                b.append(l)
            elif b:
                yield b
                b = []
        if b:
            yield b

def causes(t):
    """Why test t differs through Sluice: {cause: [evidence lines]}, one hunk at a time."""
    c = collections.OrderedDict()
    earlier = []            # refusals already seen in this test, in order
    def add(k, e):
        c.setdefault(k, [])
        if e and e not in c[k] and len(c[k]) < 3:
            c[k].append(e if len(e) <= 200 else e[:200] + '...')
    for h in blocks(sd.get(t, [])):
        plus = [l[1:] for l in h if l.startswith('+')]
        minus = [l[1:] for l in h if l.startswith('-')]
        expected_errors = [l for l in minus if l.startswith('ERROR:')]
        found = False
        for l in plus:
            m = REFUSAL.match(l)
            if not m:
                continue
            found = True
            msg = m.group(1)
            k = refusal_kind(msg, expected_errors, earlier)
            add(k, msg)
            earlier.append(short(msg))
        if found:
            continue
        if plus and all(PSQL_ECHO.match(l) for l in plus) and earlier:
            continue            # the same refusal, repeated by psql
        if any(DATE_OLD.search(l) for l in minus) and any(DATE_ISO.search(l) for l in plus):
            add('DateStyle/TimeZone from PGDATESTYLE/PGTZ not applied (libpq sends them as lower-case startup parameters "datestyle"/"timezone")', None)
            continue
        if only_qualified(minus, plus):
            add('names reported schema-qualified: the session\'s search_path is the connection\'s (default [public], sent at login), not PostgreSQL\'s "$user", public', plus[0])
            continue
        if earlier:
            add(knock_on(earlier), next((l for l in plus + minus if l.strip()), None))
            continue
        add('other output difference', next((l for l in plus + minus if l.strip()), None))
    return c

def sluice_only_lines(t):
    """Changed lines in t's diff through Sluice that its direct diff does not have."""
    strip = lambda d: collections.Counter(l for l in d[2:] if l[:1] in '+-' and not l.startswith(('+++', '---')))
    return list((strip(sd.get(t, [])) - strip(dd.get(t, []))).elements())

w = []
w.append('# pg_regress through Sluice vs direct\n')
w.append(f'Server postgresql {srvver}; regression files from source {srcver}.\n')
w.append(f"| run | tests | failed | seconds |\n|---|---|---|---|")
for n, r in (('direct', dr), ('sluice', s)):
    sec = open(os.path.join(out, n, 'seconds')).read().strip() if os.path.exists(os.path.join(out, n, 'seconds')) else '?'
    w.append(f"| {n} | {len(r)} | {sum(1 for v in r.values() if v == 'failed')} | {sec} |")
w.append('')
probe = os.path.join(out, 'pgoptions-probe.txt')
if os.path.exists(probe):
    w.append('Startup probe with pg_regress\'s PGOPTIONS through the gateway: `' + open(probe).read().strip().replace('\n', ' ') + '`\n')
w.append(f'## Failing through Sluice only ({len(only)})\n')
by_cause = collections.OrderedDict()
for t in only:
    cs = causes(t)
    w.append(f'### {t}\n')
    for k, ev in cs.items():
        by_cause.setdefault(k, []).append(t)
        w.append(f'- {k}')
        for e in ev:
            w.append(f'    - `{e}`')
    w.append('')
w.append(f'## Sluice-only failures by cause\n')
for k, ts in sorted(by_cause.items(), key=lambda kv: -len(kv[1])):
    w.append(f'- {k} ({len(ts)}): ' + ', '.join(ts))
w.append('')
w.append(f'## Failing in both runs ({len(both)})\n')
for t in both:
    same = sd.get(t, [])[2:] == dd.get(t, [])[2:]
    extra = [l[1:] for l in sluice_only_lines(t) if l.startswith('+')]
    refusals = [REFUSAL.match(l).group(1) for l in extra if REFUSAL.match(l)]
    note = 'same diff' if same else 'different diffs'
    if not same:
        other = [l for l in extra if not REFUSAL.match(l)]
        note += (f'; through Sluice also: {len(refusals)} refusal(s)' +
                 (': ' + '; '.join(f'`{r}`' for r in refusals) if refusals else '') +
                 (f', and {len(other)} other added line(s)' if other else ''))
    w.append(f"- {t}: {note}")
w.append(f'\n## Failing directly only ({len(direct_only)})\n')
for t in direct_only:
    w.append(f'- {t}')
# Every refusal the client saw, by cause, and what the gateway logged.
w.append('\n## Refusals seen through Sluice (all tests)\n')
seen = collections.OrderedDict()
for t, lines in sd.items():
    for l in lines:
        m = REFUSAL.match(l[1:]) if l.startswith('+') and not l.startswith('+++') else None
        if m:
            k = re.sub(r'^cannot parse statement: .*', 'cannot parse statement: ...', m.group(1))
            seen.setdefault(k, collections.Counter())[t] += 1
for k, ts in sorted(seen.items(), key=lambda kv: -sum(kv[1].values())):
    w.append(f'- `{k}` ({sum(ts.values())}): ' + ', '.join(f'{t} ({n})' for t, n in ts.items()))
logp = os.path.join(out, 'sluice.log')
if os.path.exists(logp):
    ansi = re.compile(r'\x1b\[[0-9;]*m')
    log = [ansi.sub('', l.rstrip('\n')) for l in open(logp, errors='replace')]
    refused = [l for l in log if 'request refused' in l]
    bad = [l for l in log if re.search(r'\b(WARN|ERROR)\b', l[:60])]
    w.append(f'\nGateway log: {len(log)} lines, {len(refused)} "request refused", {len(bad)} WARN/ERROR.')
    for l in (refused + bad)[:40]:
        w.append(f'    {l[:300]}')
missing = [t for t in dr if t not in s]
if missing:
    w.append(f'\n## Not reported by the Sluice run ({len(missing)})\n\n' + ', '.join(missing))
open(os.path.join(out, 'comparison.md'), 'w').write('\n'.join(w) + '\n')
print('\n'.join(w))
PY
log "comparison: $OUT/comparison.md"
