#!/usr/bin/env bash
# Makes sure the PostgreSQL and RabbitMQ that the integration tests need are
# reachable before `make test` runs them, and says what to start when they
# are not. It starts nothing itself. Written for bash 3.2 too (macOS), which
# has no `timeout`.
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

# reachable HOST PORT: a TCP connection opens within 3 seconds.
reachable() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null &
  local probe=$!
  (sleep 3 && kill "$probe") >/dev/null 2>&1 &
  local watchdog=$! status=0
  wait "$probe" || status=$?
  kill "$watchdog" 2>/dev/null || true
  return "$status"
}

read -r pg_host pg_port < <(hostport "$pg_url" 5432)
read -r mq_host mq_port < <(hostport "$amqp_url" 5672)

missing=()
reachable "$pg_host" "$pg_port" || missing+=("PostgreSQL at $pg_host:$pg_port")
reachable "$mq_host" "$mq_port" || missing+=("RabbitMQ at $mq_host:$mq_port")
[[ ${#missing[@]} -eq 0 ]] && exit 0

printf 'make test: not reachable: %s\n' "${missing[@]}" >&2
cat >&2 <<'MSG'
make test needs both. Start PostgreSQL 15+ on 127.0.0.1:5432 (user postgres, no
password) and RabbitMQ 3.10+ on 127.0.0.1:5672 (guest/guest), as the README says
under "Run it", or point TEST_POSTGRES_URL and AMQP_URL at servers you have.
MSG
exit 1
