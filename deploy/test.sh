#!/usr/bin/env bash
# Runs the whole test suite against a throwaway PostgreSQL cluster of its own
# (.local/pg-test), which it creates first and destroys at the end, whatever
# happened before, with Debian's PgBouncer in front of it and an OpenBao dev
# server for the key-encryption-key tests. The real tools some
# tests drive (a FHIR R4 validator from PyPI) go into a virtualenv of the project's (.local/venv), made from the
# pinned files under tests/ when missing or changed. Extra arguments go to
# `cargo test`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dir=$root/.local/pg-test

# Python tools, pinned; reinstalled only when their requirements change.
venv=$root/.local/venv
reqs=(tests/fhir/requirements.txt tests/kek/requirements.txt tests/schemathesis/requirements.txt)
stamp=$(cat "${reqs[@]}" | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check $(printf -- '-r %s ' "${reqs[@]}")
  echo "$stamp" >"$venv/.stamp"
fi
export PHI_TEST_PYTHON=$venv/bin/python

# The Payload client's packages (its contract tests drive Payload's own
# SDK, tests/api/sdk.rs), from its lockfile; reinstalled when it changes.
pkg=$root/clients/payload
command -v npm >/dev/null || { echo "test.sh: Node.js 20 and npm are needed (clients/payload)" >&2; exit 1; }
lock=$(sha256sum "$pkg/package-lock.json" | cut -c1-16)
if [ "$(cat "$pkg/node_modules/.stamp" 2>/dev/null)" != "$lock" ]; then
  (cd "$pkg" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  echo "$lock" >"$pkg/node_modules/.stamp"
fi
# Debian's Chromium, for the example app's pages (headless).
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing Debian's chromium (the example app's page tests)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
  else
    echo "test.sh: Debian's chromium is needed (the example app's page tests): apt-get install chromium" >&2
    exit 1
  fi
fi
# The example Payload app (real payload and @payloadcms/db-postgres; its
# test installs the client package from the tarball npm pack makes).
ex=$root/examples/payload-app
lock=$(sha256sum "$ex/package-lock.json" | cut -c1-16)
if [ "$(cat "$ex/node_modules/.stamp" 2>/dev/null)" != "$lock" ]; then
  (cd "$ex" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$lock" >"$ex/node_modules/.stamp"
fi

bao=$root/.local/bao-test
deploy/bao.sh stop "$bao" 2>/dev/null || true
deploy/pgbouncer.sh stop "$dir" 2>/dev/null || true
deploy/pg.sh destroy "$dir" 2>/dev/null || true
PHI_PG_FAST=1 deploy/pg.sh start "$dir"
trap 'deploy/bao.sh stop "$bao" || true; deploy/pgbouncer.sh stop "$dir" || true; deploy/pg.sh destroy "$dir"' EXIT
# OpenBao's dev server with transit, for the key-encryption-key tests.
deploy/bao.sh start "$bao"
eval "$(deploy/bao.sh env "$bao")"
export PHI_BAO_ADDR PHI_BAO_TOKEN
# Debian's PgBouncer in transaction mode in front of it, two server
# connections per database and user (tests/api/pooler.rs).
deploy/pgbouncer.sh start "$dir"
eval "$(deploy/pg.sh env "$dir")"
eval "$(deploy/pgbouncer.sh env "$dir")"
export PHI_PG_ADMIN_URL PHI_PG_APP_PASSWORD PHI_PG_ANALYTICS_PASSWORD PHI_PG_AUDITOR_PASSWORD PHI_PG_SEALER_PASSWORD PHI_PG_BINDIR PHI_PG_DIR PHI_PGBOUNCER_PORT

cargo test --locked "$@"
