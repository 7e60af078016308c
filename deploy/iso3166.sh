#!/usr/bin/env bash
# Regenerates src/domain/iso3166.rs, the region vocabulary of submissions
# (ISO 3166-1 alpha-2 countries and ISO 3166-2 subdivisions), from
# pycountry's copy of the ISO tables, at the version pinned below.
#
#   deploy/iso3166.sh           rewrite the file
#   deploy/iso3166.sh --check   fail if the file is not what the pin gives
#
# To move to a newer table: raise PYCOUNTRY, run, review the diff (a code
# that disappears may still be stored: submissions keep it until amended).
# Debian's iso-codes package is older than pycountry's copy and is not used.
set -euo pipefail
PYCOUNTRY=26.2.16
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/.local/iso3166-venv
if ! "$venv/bin/python" -c "import pycountry, sys; sys.exit(pycountry.__version__ != '$PYCOUNTRY')" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "pycountry==$PYCOUNTRY"
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$venv/bin/python" - "$PYCOUNTRY" >"$out" <<'PY'
import sys
import pycountry

codes = sorted({c.alpha_2 for c in pycountry.countries} | {s.code for s in pycountry.subdivisions})
print("//! ISO 3166-1 alpha-2 country codes and ISO 3166-2 subdivision codes, sorted")
print(f"//! (generated from pycountry {sys.argv[1]}'s copy of the ISO tables; {len(codes)} codes).")
print("//! The region vocabulary of submissions: a code, never free text.")
print("//! Regenerate with `deploy/iso3166.sh`; do not edit by hand.")
print()
print("pub const CODES: &[&str] = &[")
for c in codes:
    print(f'    "{c}",')
print("];")
PY
rustfmt --edition 2024 "$out"
target=$root/src/domain/iso3166.rs
if [ "${1:-}" = "--check" ]; then
  if ! diff -q "$out" "$target" >/dev/null; then
    diff -u "$target" "$out" | head -40
    echo "src/domain/iso3166.rs is not what pycountry $PYCOUNTRY gives: run deploy/iso3166.sh" >&2
    exit 1
  fi
  echo "src/domain/iso3166.rs matches pycountry $PYCOUNTRY"
else
  cp "$out" "$target"
  echo "wrote $target from pycountry $PYCOUNTRY"
fi
