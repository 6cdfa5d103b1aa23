#!/usr/bin/env bash
# The crash test at scale: N SIGKILL rounds (default 1,000) across vault writes and key
# rotation, passphrase changes, wipes, validator taps and sync apply; prints what was
# acknowledged and kept, and the losses (0, or the test fails). CI runs 100 rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
THUDO_CRASH_ROUNDS=${1:-1000} cargo test --release -q -p thudo-core --test crash -- --nocapture 2>&1 |
  grep -E '^crash test:|panicked|test result'
