#!/usr/bin/env bash
# A RabbitMQ cluster of private nodes (scripts/rabbitmq-node.sh) beside the
# machine's own broker: by default three nodes of the machine's
# rabbitmq-server on 127.0.0.1:5701-5703, about 30 s and 150 MB each. Needs
# root.
#
#   rabbitmq-cluster.sh start DIR [NAME [PORT:DIST_PORT ...]]
#   rabbitmq-cluster.sh stop DIR
#
# Node i runs as NAMEi@localhost (NAME defaults to ptc) from DIR/i, on the
# AMQP port and distribution port given (default 5701:25701 5702:25702
# 5703:25703); nodes 2 and up join node 1. `start` returns once every node
# runs in the cluster; the AMQP_URL of the cluster is then
#   amqp://guest:guest@127.0.0.1:5701/,amqp://guest:guest@127.0.0.1:5702/,…
# With RABBITMQ_ROOT set (scripts/rabbitmq4.sh root), the nodes run the
# RabbitMQ 4.x of that root; DIR must then lie inside it.
# Whoever starts it stops it, also when what it was started for fails.
set -euo pipefail

node_script="$(cd "$(dirname "$0")" && pwd)/rabbitmq-node.sh"
die() { echo "rabbitmq-cluster: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: $0 start|stop DIR [NAME [PORT:DIST_PORT ...]]"
cmd=$1 dir=$2
shift 2

case $cmd in
start)
  name=${1:-ptc}
  shift || true
  ports=("$@")
  [[ ${#ports[@]} -gt 0 ]] || ports=(5701:25701 5702:25702 5703:25703)
  mkdir -p "$dir"
  chmod 755 "$dir"
  # Every node boots at once; each start waits until its node answers.
  pids=()
  for i in "${!ports[@]}"; do
    n=$((i + 1))
    mkdir -p "$dir/$n"
    chmod 755 "$dir/$n"
    "$node_script" start "$dir/$n" "$name$n" "${ports[$i]%%:*}" "${ports[$i]##*:}" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do
    wait "$p" || die "a node did not start; see $dir/*/out.log"
  done
  for ((n = 2; n <= ${#ports[@]}; n++)); do
    "$node_script" ctl "$dir/$n" stop_app >/dev/null
    "$node_script" ctl "$dir/$n" join_cluster "${name}1@localhost" >/dev/null
    "$node_script" ctl "$dir/$n" start_app >/dev/null
  done
  for ((n = 1; n <= ${#ports[@]}; n++)); do
    "$node_script" ctl "$dir/$n" await_startup >/dev/null
  done
  ;;
stop)
  [[ -d $dir ]] || exit 0
  for env in "$dir"/*/env; do
    [[ -f $env ]] || continue
    "$node_script" stop "$(dirname "$env")" || true
  done
  ;;
*)
  die "unknown command $cmd"
  ;;
esac
