#!/usr/bin/env bash
# make test's second pass: the broker-facing tests again, against RabbitMQ
# 4.x, which scripts/rabbitmq4.sh installs (once) and runs beside the
# machine's broker. The broker is stopped and its mounts undone however the
# tests end. It needs root; outside CI it is skipped without, loudly and in make
# test's closing line.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

if [[ $(id -u) -ne 0 ]]; then
  if [[ ${CI:-} == true ]]; then
    echo "make test: the RabbitMQ 4.x pass needs root (debootstrap, chroot); CI=true, so this fails" >&2
    exit 1
  fi
  echo "make test: SKIPPED the RabbitMQ 4.x pass: it needs root (debootstrap, chroot)" >&2
  # For make test's closing line (scripts/skipped.sh).
  if [[ -n ${PAYTRADE_SKIPPED_FILE:-} ]]; then
    printf 'root, for the RabbitMQ 4.x pass (debootstrap, chroot)\tsudo make test\tscripts/test-rabbitmq4.sh\n' >>"$PAYTRADE_SKIPPED_FILE"
  fi
  exit 0
fi

trap 'scripts/rabbitmq4.sh down' EXIT
scripts/rabbitmq4.sh up
export AMQP_URL=amqp://guest:guest@127.0.0.1:${RABBITMQ4_PORT:-5674}/
TEST_RABBITMQ_NODE_DIR=$(scripts/rabbitmq4.sh node-dir)
# The fault suite's clusters run this RabbitMQ too.
TEST_RABBITMQ_ROOT=$(scripts/rabbitmq4.sh root)
export TEST_RABBITMQ_NODE_DIR TEST_RABBITMQ_ROOT
# This broker is the run's own: the fault suite may restart it.
export PAYTRADE_CHAOS_BROKER_RESTART=1
$GO test -race -count=1 -timeout 20m ./internal/broker ./internal/outbox ./services/trade/amqp \
  ./services/pay/httpapi ./cmd/pay ./cmd/trade ./cmd/paytradectl ./e2e
$GO test -race -count=1 -timeout 20m ./chaos
