#!/usr/bin/env bash
# For `make infra`: prints, as make assignments, the URLs at which `make run`
# and `make test` reach the PostgreSQL and RabbitMQ of deploy/docker-compose.yml
# on this machine, with the passwords of deploy/.env (already percent-encoded
# there) and the published ports (PG_PORT, MQ_PORT). The Makefile includes
# what this prints (deploy/infra.env) until `make down`; a variable set in
# the environment still wins. paytradectl reads them too through
# `make ctl ARGS='…'`.
#
#   scripts/infra-env.sh [SECRETS_FILE]   (default deploy/.env)
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:-deploy/.env}

# value NAME: NAME's value in the secrets file. The *_URLENC values hold only
# unreserved characters and %XX, so dropping the quotes is all it takes.
value() {
  local v
  v=$(sed -n "s/^$1=\"\(.*\)\"$/\1/p" "$file")
  if [[ -z $v ]]; then
    echo "infra-env: no $1 in $file; make down, then make infra" >&2
    exit 1
  fi
  printf '%s' "$v"
}

pg="postgres://postgres:$(value POSTGRES_PASSWORD_URLENC)@127.0.0.1:${PG_PORT:-5432}"
mq_user="$(value RABBITMQ_USER_URLENC):$(value RABBITMQ_PASSWORD_URLENC)"
mq="amqp://$mq_user@127.0.0.1:${MQ_PORT:-5672}/"
# The fault suite reads queue statistics through the management API.
mq_ui="http://$mq_user@127.0.0.1:${MQ_UI_PORT:-15672}/"
cat <<MAKE
# Written by make infra (scripts/infra-env.sh); make down removes it.
export TEST_POSTGRES_URL ?= $pg/postgres?sslmode=disable
export PAY_DATABASE_URL ?= $pg/pay?sslmode=disable
export TRADE_DATABASE_URL ?= $pg/trade?sslmode=disable
export AMQP_URL ?= $mq
export TEST_RABBITMQ_MANAGEMENT_URL ?= $mq_ui
MAKE
