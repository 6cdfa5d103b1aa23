#!/usr/bin/env bash
# The API contract, tried by Schemathesis (the public OpenAPI fuzzer, pinned in
# scripts/api-contract-requirements.txt) against the reference backend on loopback: once without
# credentials over every route, then once per kind of caller over its routes
# (scripts/api-contract.py). Fails on any server error, any response outside the document, and
# any schema-valid request refused. THUDO_CONTRACT_SECONDS bounds each run (25 s by default);
# THUDO_CONTRACT_SEED sets the fuzzer's seed (fixed by default, so that a failure replays).
# Under scripts/with-postgres.sh (THUDO_TEST_POSTGRES set) the server runs on that PostgreSQL
# server instead of SQLite, and the reports go to target/api-contract-postgres/.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=scripts/api-contract-requirements.txt
venv=target/api-contract-venv
# Rebuilt when the pins or the Python under it change.
stamp="$venv/$({ cat "$requirements"; python3 --version; } | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  python3 -c 'import ensurepip' 2>/dev/null || {
    echo "python3 cannot make a virtual environment: install python3-venv" >&2
    exit 1
  }
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  touch "$stamp"
fi
export SCHEMATHESIS="$venv/bin/schemathesis"
export THUDO_CONTRACT_SECONDS="${THUDO_CONTRACT_SECONDS:-25}"
export THUDO_CONTRACT_EXAMPLES="${THUDO_CONTRACT_EXAMPLES:-20}"
reports=target/api-contract
if [ -n "${THUDO_TEST_POSTGRES:-}" ]; then
  reports=target/api-contract-postgres
  export THUDO_SERVER_DB="$THUDO_TEST_POSTGRES?sslmode=require&sslrootcert=$THUDO_TEST_POSTGRES_CA"
fi
mkdir -p "$reports"
export THUDO_CONTRACT_REPORTS="$reports" THUDO_SERVER_LOG="$reports/server.log"
scripts/with-server.sh python3 scripts/api-contract.py
