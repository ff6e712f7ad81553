#!/usr/bin/env bash
# Installs what building and testing Sluice needs on a fresh Debian machine, and nothing
# when it is already there:
#   - libclang (pg_query generates its bindings with bindgen);
#   - PostgreSQL (the demo and the data-path tests run a throw-away cluster);
#   - the local OIDC provider's node packages (identity tests run a real provider);
#   - the test clients: psycopg 3 and requests for python3, and the PostgreSQL
#     JDBC driver with a JDK (javac) to compile the Java check.
# Run as root to let it install system packages; otherwise it says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# libclang itself (libclang-N.so), not libclang-cpp, which some machines carry without it.
if ! compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null && ! compgen -G "/usr/lib/*/libclang-[0-9]*.so*" >/dev/null; then
  need_apt+=(libclang-dev)
fi
# PostgreSQL server binaries and psql: `sluice demo` and the data-path tests run a
# throw-away cluster.
if ! command -v pg_config >/dev/null && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  need_apt+=(postgresql)
fi
command -v psql >/dev/null || need_apt+=(postgresql-client)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
# The driver compatibility tests (crates/postgres/tests/drivers.rs).
[ -f /usr/share/java/postgresql.jar ] || need_apt+=(libpostgresql-jdbc-java)
command -v javac >/dev/null || need_apt+=(default-jdk-headless)
command -v python3 >/dev/null || need_apt+=(python3)
if ! python3 -m pip --version >/dev/null 2>&1; then need_apt+=(python3-pip); fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${need_apt[*]} (install them with apt-get, or run this as root)" >&2
    exit 1
  fi
  echo "installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

oidc=tests-support/oidc-provider
if [ -f "$oidc/package.json" ] && [ ! -d "$oidc/node_modules" ]; then
  echo "installing the test OIDC provider's node packages" >&2
  npm ci --prefix "$oidc" --no-audit --no-fund --loglevel=error >/dev/null
fi

# Python clients the tests drive: psycopg 3 (PostgreSQL) and requests (the HTTP data
# path), for whichever python3 the tests will run.
pip_install() {  # pip_install MODULE SPEC
  python3 -c "import $1" >/dev/null 2>&1 && return 0
  echo "installing $2 for python3" >&2
  local pip_log
  pip_log=$(mktemp)
  if ! python3 -m pip install --quiet --disable-pip-version-check "$2" >"$pip_log" 2>&1; then
    if grep -q externally-managed-environment "$pip_log"; then
      # Debian's own python3 (PEP 668): the test machine is throw-away, install beside it.
      python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$2" >"$pip_log" 2>&1 \
        || { cat "$pip_log" >&2; rm -f "$pip_log"; exit 1; }
    else
      cat "$pip_log" >&2; rm -f "$pip_log"; exit 1
    fi
  fi
  rm -f "$pip_log"
  python3 -c "import $1" || { echo "$1 still not importable by python3" >&2; exit 1; }
}
pip_install psycopg 'psycopg[binary]'
pip_install requests requests
