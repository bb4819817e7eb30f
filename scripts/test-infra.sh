#!/usr/bin/env bash
# Makes sure the PostgreSQL and RabbitMQ that the integration tests need are
# reachable before `make test` runs them. Under CI it only checks, and fails
# loudly; on a laptop it starts them with docker compose when it can, and
# otherwise says exactly what to start.
set -euo pipefail

pg_url=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
amqp_url=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}

# hostport URL DEFAULT_PORT prints "host port" of a URL.
hostport() {
  local rest=${1#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  local host=${rest%%:*} port=$2
  [[ $rest == *:* ]] && port=${rest##*:}
  echo "$host $port"
}

reachable() { timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

read -r pg_host pg_port < <(hostport "$pg_url" 5432)
read -r mq_host mq_port < <(hostport "$amqp_url" 5672)

missing=()
reachable "$pg_host" "$pg_port" || missing+=("PostgreSQL at $pg_host:$pg_port")
reachable "$mq_host" "$mq_port" || missing+=("RabbitMQ at $mq_host:$mq_port")
[[ ${#missing[@]} -eq 0 ]] && exit 0

printf 'make test: not reachable: %s\n' "${missing[@]}" >&2
if [[ ${CI:-} == true ]]; then
  echo "make test: CI=true, so nothing is started; the integration tests need both servers." >&2
  exit 1
fi
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  echo "make test: starting postgres and rabbitmq from deploy/docker-compose.yml" >&2
  make -s deploy/.env
  docker compose -f deploy/docker-compose.yml up -d --wait postgres rabbitmq
  # Containers are not loopback to their servers, so the tests need the
  # credentials of deploy/.env rather than the local defaults.
  set -a; . deploy/.env; set +a
  cat >&2 <<MSG
make test: started. Point the tests at them and run make test again:
  export TEST_POSTGRES_URL='postgres://postgres:${POSTGRES_PASSWORD}@127.0.0.1:5432/postgres?sslmode=disable'
  export AMQP_URL='amqp://${RABBITMQ_USER}:${RABBITMQ_PASSWORD}@127.0.0.1:5672/'
MSG
  exit 1
fi
cat >&2 <<'MSG'
make test: no Docker engine either. Start them yourself, for example:
  PostgreSQL 15+ on 127.0.0.1:5432, user postgres, trust auth
      (Debian: apt-get install postgresql && pg_ctlcluster 15 main start)
  RabbitMQ 3.10+ on 127.0.0.1:5672, user guest/guest
      (Debian: apt-get install rabbitmq-server && rabbitmq-server -detached)
or point TEST_POSTGRES_URL and AMQP_URL at servers you have.
MSG
exit 1
