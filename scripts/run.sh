#!/usr/bin/env bash
# Runs pay and trade side by side against the local servers, for `make run`.
# Ctrl-C (or either service exiting) stops both, gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."

bin/paytradectl db create
bin/pay &
pay=$!
bin/trade &
trade=$!
stop() { kill -TERM "$pay" "$trade" 2>/dev/null || true; wait "$pay" "$trade" 2>/dev/null || true; }
trap 'stop; exit 0' INT TERM
trap stop EXIT
# Whichever ends first, the other follows.
wait -n "$pay" "$trade"
