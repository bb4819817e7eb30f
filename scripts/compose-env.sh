#!/usr/bin/env bash
# Writes the secrets file of deploy/docker-compose.yml (default deploy/.env),
# unless it exists: every password, random — or taken from the environment
# (POSTGRES_PASSWORD, RABBITMQ_USER, RABBITMQ_PASSWORD, PAY_MQ_PASSWORD, TRADE_MQ_PASSWORD,
# GRAFANA_ADMIN_PASSWORD) when set there. (The signing keys are not here:
# compose's `keys` service makes them into volumes on first use.) A password may hold any character but a
# line break.
#
# Compose interpolates ${VAR} but cannot percent-encode, and a password goes
# into the services' URLs. So beside each raw password the file holds its
# percent-encoded form (*_URLENC), which the compose file puts into the URLs;
# the containers of PostgreSQL and RabbitMQ get the raw one. Values are
# written double-quoted with \, " and $ escaped, which Compose v2 reads back
# verbatim. Runs under bash 3.2 too (macOS).
#
# The servers take their passwords only when their volumes are first made:
# to change one, `make down` (which deletes the volumes and this file), then
# `make up` again.
set -euo pipefail
cd "$(dirname "$0")/.."

file=${1:-deploy/.env}
# pay's payment-password pepper: id:base64 of 32 random bytes. A file
# written before the pepper gets one added; the rest of it stays.
pepper() { printf 'p1:%s' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')"; }
if [[ -e $file ]]; then
  if ! grep -q '^PAY_PASSWORD_PEPPERS=' "$file"; then
    printf 'PAY_PASSWORD_PEPPERS="%s"\n' "$(pepper)" >>"$file"
    echo "compose-env: added a payment-password pepper to $file" >&2
  fi
  exit 0
fi

# random N: N characters, URL-unsafe ones included, so the encoding is
# exercised by every make up and not only by the tests.
random() {
  LC_ALL=C tr -dc 'A-Za-z0-9@:/?#%+=&!~._-' </dev/urandom | head -c "$1" || true
}

# urlencode S: S percent-encoded, byte by byte (RFC 3986 unreserved kept).
urlencode() {
  local LC_ALL=C s=$1 out='' c n hex i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
    [A-Za-z0-9._~-]) out+=$c ;;
    *)
      # A byte above 127 may come out negative; bring it back to 0-255.
      printf -v n '%d' "'$c"
      printf -v hex '%%%02X' $(((n + 256) % 256))
      out+=$hex
      ;;
    esac
  done
  printf '%s' "$out"
}

# quote S: S as a double-quoted Compose .env value.
quote() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//\$/\\\$}
  printf '"%s"' "$s"
}

postgres_password=${POSTGRES_PASSWORD:-$(random 24)}
rabbitmq_user=${RABBITMQ_USER:-paytrade}
rabbitmq_password=${RABBITMQ_PASSWORD:-$(random 24)}
grafana_password=${GRAFANA_ADMIN_PASSWORD:-$(random 24)}
# pay's and trade's own broker users (deploy/rabbitmq/users.sh makes them).
pay_mq_password=${PAY_MQ_PASSWORD:-$(random 24)}
trade_mq_password=${TRADE_MQ_PASSWORD:-$(random 24)}
# Shared by the RabbitMQ nodes of the cluster profile; hex, as Erlang wants.
erlang_cookie=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
for v in "$postgres_password" "$rabbitmq_user" "$rabbitmq_password" "$pay_mq_password" "$trade_mq_password" "$grafana_password"; do
  if [[ $v == *$'\n'* ]]; then
    echo "compose-env: a password or secret holds a line break; choose another" >&2
    exit 1
  fi
done

umask 077
tmp="$file.tmp.$$"
cat >"$tmp" <<EOF
# Written by scripts/compose-env.sh (make up). Every value is a secret: keep
# this file out of version control and images. To change a password, run
# make down (it deletes the data, the servers keep their first passwords),
# then set it in the environment for the next make up, e.g.
#   POSTGRES_PASSWORD='...' make up
POSTGRES_PASSWORD=$(quote "$postgres_password")
POSTGRES_PASSWORD_URLENC=$(quote "$(urlencode "$postgres_password")")
RABBITMQ_USER=$(quote "$rabbitmq_user")
RABBITMQ_USER_URLENC=$(quote "$(urlencode "$rabbitmq_user")")
RABBITMQ_PASSWORD=$(quote "$rabbitmq_password")
RABBITMQ_PASSWORD_URLENC=$(quote "$(urlencode "$rabbitmq_password")")
PAY_MQ_PASSWORD=$(quote "$pay_mq_password")
PAY_MQ_PASSWORD_URLENC=$(quote "$(urlencode "$pay_mq_password")")
TRADE_MQ_PASSWORD=$(quote "$trade_mq_password")
TRADE_MQ_PASSWORD_URLENC=$(quote "$(urlencode "$trade_mq_password")")
GRAFANA_ADMIN_PASSWORD=$(quote "$grafana_password")
RABBITMQ_ERLANG_COOKIE=$(quote "$erlang_cookie")
PAY_PASSWORD_PEPPERS=$(quote "$(pepper)")
EOF
mv "$tmp" "$file"
echo "compose-env: wrote $file with new passwords" >&2
