#!/bin/sh
# Gives pay and trade broker users of their own once the node is up, with
# only the permissions each needs on the default names (configure, write,
# read; TestComposeBrokerUsersHaveExactlyTheServicesPermissions checks them
# against the services' own topologies), and makes the administrator an
# impersonator, so that `paytradectl errors replay` can send a parked
# event again as the user that first published it. Idempotent: every node
# of the cluster profile runs it, and so does every restart.
set -eu
until rabbitmqctl -q await_startup >/dev/null 2>&1; do sleep 1; done
user() { # name password configure write read
  rabbitmqctl -q add_user "$1" "$2" >/dev/null 2>&1 || rabbitmqctl -q change_password "$1" "$2"
  rabbitmqctl -q set_permissions -p / "$1" "$3" "$4" "$5"
}
user pay "$PAY_MQ_PASSWORD" \
  '^(error[.]direct|error[.]queue|pay[.]refund[.]queue|pay[.]topic|trade[.]topic)$' \
  '^(error[.]direct|error[.]queue|pay[.]refund[.]queue|pay[.]topic)$' \
  '^(error[.]direct|pay[.]refund[.]queue|trade[.]topic)$'
user trade "$TRADE_MQ_PASSWORD" \
  '^(error[.]direct|error[.]queue|mark[.]order[.]pay[.]queue|mark[.]order[.]refund[.]queue|pay[.]topic|trade[.]topic)$' \
  '^(error[.]direct|error[.]queue|mark[.]order[.]pay[.]queue|mark[.]order[.]refund[.]queue|trade[.]topic)$' \
  '^(error[.]direct|mark[.]order[.]pay[.]queue|mark[.]order[.]refund[.]queue|pay[.]topic)$'
rabbitmqctl -q set_user_tags "$RABBITMQ_DEFAULT_USER" administrator impersonator
touch /var/lib/rabbitmq/.paytrade-users
