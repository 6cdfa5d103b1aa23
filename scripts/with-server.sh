#!/usr/bin/env bash
# Runs a command with the reference backend on loopback (seeded with the demo citizen's content):
# THUDO_SERVER_URL names it, THUDO_DEMO_CITIZEN the seeded citizen, THUDO_ENROLMENT_CODES six
# single-use validator enrolment codes (route 32), THUDO_INSPECTOR_CODES two for inspectors' devices
# (route 32), THUDO_GATE_CODES one for each of six metro gates ("201:entry=CODE 205:exit=CODE ...":
# Cát Linh in, Thượng Đình out, La Thành and La Khê both ways).
# Its identity provider is a local test one: POST $THUDO_SERVER_URL/test/identity/token
# {citizen_id, nonce} gives a citizen's ID token, POST .../test/identity/operator-token
# {role, organisation} an operator's access token. The server stops afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p thudo-server
DIR=$(mktemp -d)
CITIZEN=001088012345
# THUDO_SERVER_DB: another database (a PostgreSQL URL) instead of a new SQLite file.
target/debug/thudo-server --listen 127.0.0.1:0 --db "${THUDO_SERVER_DB:-$DIR/server.db}" \
  --seed-citizen "$CITIZEN" --seed-enrolments 6 --seed-inspectors 2 \
  --seed-gate 201:entry --seed-gate 205:exit --seed-gate 202:entry --seed-gate 210:exit \
  --seed-gate 210:entry --seed-gate 202:exit --test-identity-provider --sandbox-payments --no-rate-limits >"$DIR/out" 2>"$DIR/err" &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  # What the server said, for a failed run.
  [ -z "${THUDO_SERVER_LOG:-}" ] || cp "$DIR/err" "$THUDO_SERVER_LOG"
  rm -rf "$DIR"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$DIR/out" 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || { cat "$DIR/err" >&2; exit 1; }
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$DIR/out")
[ -n "$URL" ] || { echo "the server did not start" >&2; cat "$DIR/err" >&2; exit 1; }
CODES=$(sed -n 's/^enrolment-code //p' "$DIR/out" | tr '\n' ' ')
INSPECTORS=$(sed -n 's/^inspector-enrolment-code //p' "$DIR/out" | tr '\n' ' ')
GATES=$(sed -n 's/^gate-enrolment-code \([^ ]*\) \(.*\)$/\1=\2/p' "$DIR/out" | tr '\n' ' ')
export THUDO_SERVER_URL="$URL" THUDO_DEMO_CITIZEN="$CITIZEN" THUDO_ENROLMENT_CODES="$CODES" THUDO_INSPECTOR_CODES="$INSPECTORS" THUDO_GATE_CODES="$GATES"
"$@"
