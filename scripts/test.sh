#!/usr/bin/env bash
# make test: every test, integration included, against the real PostgreSQL
# and RabbitMQ; then the fault suite in its short mode, last and alone (one
# of its scenarios may restart the broker every other test shares); then
# the broker-facing tests again on RabbitMQ 4.x (scripts/test-rabbitmq4.sh).
#
# A test that needs what this machine or user lacks (root, a local
# rabbitmq-server, Chromium, Compose v2, promtool) is skipped with the
# reason (testenv.Missing); the run ends with one line saying what was
# skipped and how to run it (scripts/skipped.sh). Under CI=true nothing may
# be skipped: such a test fails, and so does the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export GO=${GO:-go}

# The packages with tests of the fault switches themselves, which exist
# only in a -tags faultinject build (crash points, seed-style wiring); chaos,
# bench and the crash tests build their binaries with the tag.
fault_packages=(./internal/crashpoint ./cmd/pay ./cmd/trade)
# The seed-style wiring itself (inline publish, auto-ack, the unconditional
# and refund-anew stores) is compiled only with the tag too: its tests, by name.
seed_packages=(./internal/broker ./services/pay/postgres ./services/trade/postgres)
seed_tests='Inline|AutoAck|PublishAfterCommit|MarkPaidUnconditionally|Seed'

skipped=$(mktemp)
export PAYTRADE_SKIPPED_FILE=$skipped
started=$SECONDS
finish() {
  local status=$?
  echo "make test: $([[ $status -eq 0 ]] && echo passed || echo FAILED) after $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s" >&2
  scripts/skipped.sh "$skipped" || status=1
  rm -f "$skipped"
  exit "$status"
}
trap finish EXIT

# step NAME COMMAND... runs the command and says how long it took, so that
# a slow run shows where its time went.
step() {
  local name=$1 begun=$SECONDS
  shift
  "$@"
  echo "make test: $name took $((SECONDS - begun)) s" >&2
}

# Every Go file as gofmt writes it.
unformatted=$(gofmt -l .)
if [[ -n $unformatted ]]; then
  printf 'gofmt -l lists files that are not formatted:\n%s\n' "$unformatted" >&2
  exit 1
fi
step "checking PostgreSQL and RabbitMQ are up" scripts/test-infra.sh
step "installing the tools" scripts/install-tools.sh chromium compose promtool patroni
step "go vet" $GO vet ./...
step "go vet -tags faultinject" $GO vet -tags faultinject ./...
# shellcheck disable=SC2046
step "go test ./..." $GO test -race -count=1 -timeout 20m $($GO list ./... | grep -v /chaos$)
step "the fault switches' tests" $GO test -race -count=1 -tags faultinject "${fault_packages[@]}"
step "the seed-style wiring's tests" $GO test -race -count=1 -tags faultinject -run "$seed_tests" "${seed_packages[@]}"
step "the fault suite" $GO test -race -count=1 -timeout 20m ./chaos
step "the RabbitMQ 4.x pass" scripts/test-rabbitmq4.sh
