#!/usr/bin/env bash
# One private RabbitMQ node beside the machine's own broker: its own node
# name, ports, data, logs and configuration, so a test can kill it, restart
# it, cluster it or set an alarm on it without touching the broker on 5672
# that everything else shares. Needs root (the node runs as user rabbitmq,
# whose Erlang cookie the CLI tools then share).
#
#   rabbitmq-node.sh start DIR NAME PORT DIST_PORT [MGMT_PORT]
#                                     first start: writes DIR/env
#   rabbitmq-node.sh start DIR        start again with the settings in DIR/env
#   rabbitmq-node.sh stop DIR         stop (SIGKILL if it does not within 30 s)
#   rabbitmq-node.sh kill DIR         SIGKILL the node, as a crash would
#   rabbitmq-node.sh ctl DIR ARGS...  rabbitmqctl ARGS against the node
#
# NAME is a short node name (it runs as NAME@localhost), PORT its AMQP port
# on 127.0.0.1, DIST_PORT its Erlang distribution port; with MGMT_PORT the
# node runs the management plugin, its HTTP API on 127.0.0.1:MGMT_PORT.
# `start` returns once the node accepts AMQP connections.
#
# With RABBITMQ_ROOT set at the first start to a root made by
# scripts/rabbitmq4.sh, the node runs that root's RabbitMQ inside it (chroot),
# with the root's epmd port; DIR must then lie inside the root.
set -euo pipefail

die() { echo "rabbitmq-node: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: $0 start|stop|kill|ctl DIR [...]"
cmd=$1 dir=$2
shift 2

if [[ $cmd == start && $# -ge 3 ]]; then
  [[ $(id -u) -eq 0 ]] || die "must run as root, to start the node as user rabbitmq"
  mkdir -p "$dir/mnesia" "$dir/log"
  root=${RABBITMQ_ROOT:-}
  inner=$dir
  if [[ -n $root ]]; then
    root=$(cd "$root" && pwd)
    dir=$(cd "$dir" && pwd)
    [[ $dir == "$root"/* ]] || die "$dir is not inside RABBITMQ_ROOT $root"
    inner=${dir#"$root"}
  fi
  cat >"$dir/env" <<ENV
root='$root'
inner='$inner'
node='$1@localhost'
port='$2'
dist_port='$3'
epmd_port='$( [[ -n $root ]] && cat "$root/.paytrade-epmd-port" || echo 4369)'
ENV
  # loopback_users = none lets guest in; the node listens on loopback only.
  printf 'loopback_users = none\nlisteners.tcp.default = 127.0.0.1:%s\n' "$2" >"$dir/rabbitmq.conf"
  # No plugins but the management API when asked for, on loopback.
  : >"$dir/enabled_plugins"
  if [[ -n ${4:-} ]]; then
    printf 'management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %s\n' "$4" >>"$dir/rabbitmq.conf"
    echo '[rabbitmq_management].' >"$dir/enabled_plugins"
  fi
  chown -R rabbitmq:rabbitmq "$dir" 2>/dev/null || true
  if [[ -n $root ]]; then
    # The root has its own user rabbitmq, possibly with another uid.
    chroot "$root" chown -R rabbitmq:rabbitmq "$inner"
  fi
fi

[[ -f $dir/env ]] || die "$dir/env missing: start the node with NAME PORT DIST_PORT first"
# shellcheck source=/dev/null
. "$dir/env"

# as_rabbitmq runs a command as user rabbitmq, in the root when there is one,
# with this node's environment.
as_rabbitmq() {
  local env=(HOME=/var/lib/rabbitmq ERL_EPMD_PORT="$epmd_port"
    RABBITMQ_NODENAME="$node" RABBITMQ_NODE_PORT="$port" RABBITMQ_DIST_PORT="$dist_port"
    RABBITMQ_MNESIA_BASE="$inner/mnesia" RABBITMQ_LOG_BASE="$inner/log"
    RABBITMQ_CONFIG_FILE="$inner/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$inner/enabled_plugins"
    RABBITMQ_PID_FILE="$inner/pid")
  if [[ -n $root ]]; then
    chroot "$root" runuser -u rabbitmq -- env "${env[@]}" "$@"
  else
    runuser -u rabbitmq -- env "${env[@]}" "$@"
  fi
}

ctl() { as_rabbitmq /usr/lib/rabbitmq/bin/rabbitmqctl -n "$node" "$@"; }

pid() { [[ -s $dir/pid ]] && cat "$dir/pid"; }

running() {
  local p
  p=$(pid) || return 1
  kill -0 "$p" 2>/dev/null
}

case $cmd in
start)
  running && die "$node is already running (pid $(pid))"
  rm -f "$dir/pid"
  # In the background rather than with -detached, which fails silently
  # when started through runuser/su. setsid: the node outlives this script
  # and no signal meant for the caller's process group reaches it.
  # The open-files limit a service manager would give it, rather than the
  # shell's 1024.
  setsid bash -c "ulimit -n 65536; $(declare -f as_rabbitmq); $(declare -p root inner node port dist_port epmd_port); \
    as_rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server" >>"$dir/out.log" 2>&1 </dev/null &
  launcher=$!
  for _ in $(seq 120); do
    if ctl --timeout 60 await_startup >/dev/null 2>&1 &&
      timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
      exit 0
    fi
    kill -0 "$launcher" 2>/dev/null || die "$node exited at start-up:
$(tail -n 30 "$dir/out.log")"
    sleep 0.5
  done
  die "$node did not start within 60 s:
$(tail -n 30 "$dir/out.log")"
  ;;
stop)
  running || exit 0
  p=$(pid)
  timeout 30 bash -c "$(declare -f as_rabbitmq ctl); $(declare -p root inner node port dist_port epmd_port); ctl shutdown" \
    >/dev/null 2>&1 || true
  if kill -0 "$p" 2>/dev/null; then
    kill -KILL "$p" 2>/dev/null || true
  fi
  while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
  ;;
kill)
  running || die "$node is not running"
  p=$(pid)
  kill -KILL "$p"
  while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
  ;;
ctl)
  ctl "$@"
  ;;
*)
  die "unknown command $cmd"
  ;;
esac
