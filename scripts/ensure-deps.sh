#!/usr/bin/env bash
# Installs what building and testing Sluice needs on a fresh Debian machine, and nothing
# when it is already there:
#   - libclang (pg_query generates its bindings with bindgen);
#   - PostgreSQL (the demo and the data-path tests run a throw-away cluster);
#   - the local OIDC provider's node packages (identity tests run a real provider).
# Run as root to let it install system packages; otherwise it says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
if ! compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null && ! compgen -G "/usr/lib/*/libclang*.so*" >/dev/null; then
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
