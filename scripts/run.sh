#!/usr/bin/env bash
# Runs pay and trade side by side against the local servers, for `make run`.
# Ctrl-C (or either service exiting) stops both, gracefully. Written for
# bash 3.2 too (macOS), so it waits without `wait -n`.
set -euo pipefail
cd "$(dirname "$0")/.."
# A laptop: the services accept the published development JWT secret
# when AUTH_JWT_SECRET is unset; paytradectl token signs with it too.
export PAYTRADE_DEV=${PAYTRADE_DEV:-1}

bin/paytradectl db create
bin/pay &
pay=$!
bin/trade &
trade=$!
stop() {
  kill -TERM "$pay" "$trade" 2>/dev/null || true
  wait "$pay" 2>/dev/null || true
  wait "$trade" 2>/dev/null || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT
# Whichever ends first, the other follows.
while kill -0 "$pay" 2>/dev/null && kill -0 "$trade" 2>/dev/null; do
  sleep 1
done
