#!/usr/bin/env bash
# RabbitMQ 4.x for the tests, installed and run by the project itself: a
# minimal Debian trixie root (debootstrap) holding trixie's rabbitmq-server,
# run in a chroot beside the machine's own broker. Needs root.
#
#   rabbitmq4.sh root   build the root unless it is there (about 45 s, 370 MB);
#                       print its path
#   rabbitmq4.sh up     root, mounts, and a broker on 127.0.0.1:$RABBITMQ4_PORT
#   rabbitmq4.sh down   stop every process of the root, unmount; the root stays
#   rabbitmq4.sh node-dir   the broker's directory, for rabbitmq-node.sh ctl
#
# The root lives in .rabbitmq4/ of the repository (git-ignored) unless
# RABBITMQ4_ROOT says otherwise, and is reused when present. `up` is
# idempotent; whoever runs it runs `down` when done, also on failure.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
root=${RABBITMQ4_ROOT:-$repo/.rabbitmq4}
port=${RABBITMQ4_PORT:-5674}
# The machine's epmd (Erlang 25) owns 4369; the root's Erlang has its own.
epmd_port=${RABBITMQ4_EPMD_PORT:-4374}
node_dir=$root/var/lib/paytrade-broker

die() { echo "rabbitmq4: $*" >&2; exit 1; }
if [[ ${1:-} == node-dir ]]; then
  echo "$node_dir"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot, mounts)"

make_root() {
  if [[ -x $root/usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
    return
  fi
  command -v debootstrap >/dev/null || {
    echo "rabbitmq4: installing debootstrap" >&2
    apt-get install -y -q debootstrap >/dev/null ||
      { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
  }
  local tmp=$root.partial
  rm -rf --one-file-system "$tmp"
  echo "rabbitmq4: building $root with debootstrap (about a minute)" >&2
  # The mirror the machine's apt uses, if it tells; else debootstrap's default.
  debootstrap --variant=minbase --include=rabbitmq-server trixie "$tmp" $(apt_mirror) >"$root.log" 2>&1 ||
    die "debootstrap failed; see $root.log"
  mv "$tmp" "$root"
}

# apt_mirror prints the Debian mirror the machine's apt uses, if any.
apt_mirror() {
  apt-get indextargets --format '$(URI)' 'Identifier: Packages' 2>/dev/null |
    sed -n 's#^\(.*\)/dists/.*#\1#p' | grep -v security | head -n 1 || true
}

mounted() { mountpoint -q "$1"; }

mount_root() {
  mounted "$root/proc" || mount -t proc proc "$root/proc"
  if ! mounted "$root/dev"; then
    # A tmpfs with its own device nodes rather than a bind of the host's
    # /dev: deleting the root by mistake can then never reach the host's.
    mount -t tmpfs -o mode=755,size=1m dev "$root/dev"
    mknod -m 666 "$root/dev/null" c 1 3
    mknod -m 666 "$root/dev/zero" c 1 5
    mknod -m 666 "$root/dev/random" c 1 8
    mknod -m 666 "$root/dev/urandom" c 1 9
    mkdir -m 1777 "$root/dev/shm"
  fi
  echo "$epmd_port" >"$root/.paytrade-epmd-port"
  # The machine's names: a name the root cannot resolve from its files
  # goes to DNS, and Erlang waits 5 s on it now and then while accepting a
  # connection.
  cp /etc/hosts "$root/etc/hosts"
}

# root_pids prints every process running inside the root.
root_pids() {
  local p real
  real=$(readlink -f "$root")
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/root" 2>/dev/null) == "$real" ]] && echo "${p#/proc/}"
  done
  return 0
}

case ${1:-} in
root)
  make_root
  echo "$root"
  ;;
up)
  make_root
  mount_root
  if [[ -f $node_dir/env ]] && "$repo/scripts/rabbitmq-node.sh" ctl "$node_dir" ping >/dev/null 2>&1; then
    exit 0
  fi
  if [[ ! -f $node_dir/env ]]; then
    mkdir -p "$node_dir"
    chmod 755 "$node_dir"
    RABBITMQ_ROOT=$root "$repo/scripts/rabbitmq-node.sh" start "$node_dir" rabbit4 "$port" $((port + 20000))
  else
    "$repo/scripts/rabbitmq-node.sh" start "$node_dir"
  fi
  echo "rabbitmq4: RabbitMQ $("$repo/scripts/rabbitmq-node.sh" ctl "$node_dir" version 2>/dev/null | tail -n 1) on 127.0.0.1:$port" >&2
  ;;
down)
  [[ -d $root ]] || exit 0
  if [[ -f $node_dir/env ]]; then
    "$repo/scripts/rabbitmq-node.sh" stop "$node_dir" || true
  fi
  # Whatever else runs in the root (its epmd, a node a test left): gone.
  pids=$(root_pids)
  if [[ -n $pids ]]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    for p in $pids; do
      while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
    done
  fi
  for m in dev proc; do
    if mounted "$root/$m"; then umount "$root/$m"; fi
  done
  ;;
*)
  die "usage: $0 root|up|down|node-dir"
  ;;
esac
