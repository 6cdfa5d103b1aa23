#!/usr/bin/env bash
# The API contract, tried by Schemathesis (the public OpenAPI fuzzer, pinned in
# scripts/api-contract-requirements.txt) against the reference backend on loopback: once without
# credentials over every route, then once per kind of caller over its routes
# (scripts/api-contract.py). Fails on any server error, any response outside the document, and
# any schema-valid request refused. THUDO_CONTRACT_SECONDS bounds each run (25 s by default).
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
mkdir -p target/api-contract
export THUDO_SERVER_LOG=target/api-contract/server.log
scripts/with-server.sh python3 scripts/api-contract.py
