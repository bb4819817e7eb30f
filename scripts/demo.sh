#!/usr/bin/env bash
# make demo: the README's walkthrough, step for step, against running
# services, checking every answer. The README's steps and these are one
# sequence: change them together.
#
#   scripts/demo.sh CTL...   CTL is how to run paytradectl: bin/paytradectl
#                            (make demo, after make run), or
#                            docker compose -f deploy/docker-compose.yml run --rm -T ctl
#                            (make demo-up, after make up)
#
# pay and trade are at 127.0.0.1:$PAY_PORT and :$TRADE_PORT (8086, 8085).
# Each run uses a user of its own, so it can be repeated on the same data.
# Needs bash (3.2 is enough) and curl.
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 CTL... (for example: $0 bin/paytradectl)" >&2
  exit 2
fi
ctl=("$@")
pay=http://127.0.0.1:${PAY_PORT:-8086}
trade=http://127.0.0.1:${TRADE_PORT:-8085}

steps=0
fail() {
  echo "demo: FAILED at step $steps: $*" >&2
  exit 1
}
step() {
  steps=$((steps + 1))
  echo "demo: $steps. $*"
}

# request METHOD URL TOKEN [BODY [HEADER]]: sets status, body and headers.
headers_file=$(mktemp)
trap 'rm -f "$headers_file"' EXIT
request() {
  local args=(-sS -X "$1" "$2" -H "Authorization: Bearer $3" -D "$headers_file" -w '\n%{http_code}')
  [[ $# -ge 4 ]] && args+=(-H 'Content-Type: application/json' -d "$4")
  [[ $# -ge 5 ]] && args+=(-H "$5")
  local out
  out=$(curl "${args[@]}") || fail "$1 $2: curl failed (is the service running?)"
  status=${out##*$'\n'}
  body=${out%$'\n'*}
  body=${body%$'\n'}
  headers=$(cat "$headers_file")
}

# expect STATUS: the last answer had STATUS.
expect() {
  [[ $status == "$1" ]] || fail "got HTTP $status $body, want $1"
}

# field NAME: the number or null of a top-level field of the last body.
field() {
  local v
  v=$(printf '%s' "$body" | sed -En "s/.*\"$1\":(null|-?[0-9]+).*/\1/p")
  [[ -n $v ]] || fail "no field $1 in $body"
  printf '%s' "$v"
}

# expect_field NAME VALUE
expect_field() {
  local got
  got=$(field "$1")
  [[ $got == "$2" ]] || fail "$1 is $got in $body, want $2"
}

# wait_for_status ORDER STATUS: polls the order for up to 10 s.
wait_for_status() {
  for _ in $(seq 1 50); do
    request GET "$trade/orders/$1" "$alice"
    expect 200
    [[ $(field status) == "$2" ]] && break
    sleep 0.2
  done
  expect_field status "$2"
}

# A user of this run's own, so that wallets and orders of earlier runs do
# not get in the way.
user=$(($(date +%s) % 100000000 * 100 + $$ % 100 + 1000))
ops=$("${ctl[@]}" token -operator)
alice=$("${ctl[@]}" token -user "$user")

step "a wallet for user $user with 50.00, payment password 123"
request POST "$pay/accounts" "$ops" "{\"userId\":$user,\"password\":\"123\",\"balance\":5000}"
expect 201
expect_field balance 5000

step "50.00 more, credited once however often it is sent with its Idempotency-Key"
request POST "$pay/accounts/$user/deposits" "$ops" '{"amount":5000}' "Idempotency-Key: topup-$user"
expect 200
expect_field balance 10000
request POST "$pay/accounts/$user/deposits" "$ops" '{"amount":5000}' "Idempotency-Key: topup-$user"
expect 200
expect_field balance 10000
printf '%s' "$headers" | grep -qi '^Idempotent-Replayed: true' || fail "no Idempotent-Replayed: true in $headers"

step "an order of 25.00 at trade: status 1 (unpaid)"
request POST "$trade/orders" "$alice" '{"totalFee":2500,"paymentType":3}'
expect 201
expect_field status 1
order=$(field id)

step "its pay order, applied for at pay by trade for the order's owner and total: status 1 (waiting)"
request POST "$trade/orders/$order/pay-order" "$alice" '{"payChannelCode":"balance","payType":5}'
expect 201
expect_field status 1
expect_field bizUserId "$user"
expect_field amount 2500
payorder=$(field id)

step "pay it, with an Idempotency-Key: status 3 (paid)"
request POST "$pay/pay-orders/$payorder" "$alice" '{"pw":"123"}' "Idempotency-Key: demo-$user"
expect 200
expect_field status 3

step "the order is paid at trade (pay.success through the outbox and RabbitMQ): status 2"
wait_for_status "$order" 2

step "the balance: 100.00 - 25.00"
request GET "$pay/accounts/me" "$alice"
expect 200
expect_field balance 7500

step "the same payment again is replayed, not paid twice"
request POST "$pay/pay-orders/$payorder" "$alice" '{"pw":"123"}' "Idempotency-Key: demo-$user"
expect 200
printf '%s' "$headers" | grep -qi '^Idempotent-Replayed: true' || fail "no Idempotent-Replayed: true in $headers"
request GET "$pay/accounts/me" "$alice"
expect_field balance 7500

step "refund 10.00 of the order: 202, refund requested; asking again under its key answers with the same refund"
request POST "$trade/orders/$order/refunds" "$alice" '{"amount":1000}' "Idempotency-Key: part-$user"
expect 202
refund_id=$(printf '%s' "$body" | sed -En 's/.*"refundId":"([^"]+)".*/\1/p')
[[ -n $refund_id ]] || fail "no refundId in $body"
request POST "$trade/orders/$order/refunds" "$alice" '{"amount":1000}' "Idempotency-Key: part-$user"
expect 202
[[ $body == *"\"refundId\":\"$refund_id\""* ]] || fail "another refund: $body, want $refund_id"

step "credited (refund.requested to pay, refund.success back): still paid (2), refundedAmount 1000; balance 85.00"
for _ in $(seq 1 50); do
  request GET "$trade/orders/$order" "$alice"
  [[ $(field refundedAmount) == 1000 ]] && break
  sleep 0.2
done
expect_field refundedAmount 1000
expect_field status 2
request GET "$pay/accounts/me" "$alice"
expect_field balance 8500

step "refund what remains (15.00): the order is refunded in full, status 7"
request POST "$trade/orders/$order/refund" "$alice"
expect 202
expect_field amount 1500
wait_for_status "$order" 7
expect_field refundedAmount 2500
[[ $body == *'"refundStatus":"refunded"'* ]] || fail "refundStatus is not refunded in $body"

step "the balance is whole again: 85.00 + 15.00"
request GET "$pay/accounts/me" "$alice"
expect 200
expect_field balance 10000

echo "demo: all $steps steps answered as the README says"
