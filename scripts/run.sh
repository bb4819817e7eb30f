#!/usr/bin/env bash
# Runs pay and trade side by side against the local servers, for `make run`.
# Ctrl-C (or either service exiting) stops both, gracefully. Written for
# bash 3.2 too (macOS), so it waits without `wait -n`.
set -euo pipefail
cd "$(dirname "$0")/.."
# A laptop: development mode, so each service listens on 127.0.0.1 only.
export PAYTRADE_DEV=${PAYTRADE_DEV:-1}
# The signing keys: a set made on first use in .keys/ and kept. .keys/ctl
# holds every private key (make demo and `PAYTRADE_KEYS_DIR=.keys/ctl
# bin/paytradectl token ...` sign with it); .keys/pay and .keys/trade hold
# each service's own private key and the public keys, all it is given.
keys=.keys
bin/paytradectl keys -dir "$keys/ctl" -split "$keys" -keep >/dev/null
# pay's payment-password pepper: made on first use beside the keys and kept
# (a wallet hashed under it cannot pay without it).
if [[ ! -s $keys/pay.pepper ]]; then
  (umask 077 && printf 'p1:%s\n' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')" >"$keys/pay.pepper")
fi

bin/paytradectl db create
# Each finds the other where it listens: trade asks pay about payments, pay
# asks trade which orders and refunds it issued.
pay_addr=${PAY_HTTP_ADDR:-:8086}
trade_addr=${TRADE_HTTP_ADDR:-:8085}
export PAY_SERVICE_URL=${PAY_SERVICE_URL:-http://127.0.0.1:${pay_addr##*:}}
export TRADE_SERVICE_URL=${TRADE_SERVICE_URL:-http://127.0.0.1:${trade_addr##*:}}
PAY_PASSWORD_PEPPERS=$(cat "$keys/pay.pepper") PAYTRADE_KEYS_DIR=$keys/pay bin/pay &
pay=$!
PAYTRADE_KEYS_DIR=$keys/trade bin/trade &
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
