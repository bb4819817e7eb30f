#!/usr/bin/env bash
# Installs the tools some checks of `make test` need, on Debian (as root, or
# with sudo), each only if it is missing, and says how long it took:
#
#   scripts/install-tools.sh chromium   headless Chromium, for the browser test of /docs
#   scripts/install-tools.sh promtool   Prometheus's promtool, for the dashboard's config check
#   scripts/install-tools.sh compose    Docker Compose v2 as a static binary in .tools/compose/,
#                                       for `make compose-check` without a Docker engine
#   scripts/install-tools.sh patroni    Debian's patroni (3.0) and etcd-server (3.4), for the
#                                       tests that run each database on a Patroni cluster
#                                       over the machine's PostgreSQL binaries
#
# Compose v2: Debian bookworm ships Compose 1.29, which predates profiles
# and rejects a top-level `name:`. trixie's docker-compose package (2.x) is
# one static Go binary, so it is fetched with apt-get download through a
# sources list of its own — trixie main, from the same mirror and keyring
# as the machine's bookworm — and unpacked with dpkg -x; nothing of trixie
# is installed into the system.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)

apt_updated=
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: no apt-get here; install $* yourself (README, \"Run it\")" >&2
    return 1
  fi
  if [[ -z $apt_updated ]]; then
    "${sudo[@]}" apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# timed NAME CMD... runs CMD and prints how long it took.
timed() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "install-tools: $name installed in $((SECONDS - start)) s" >&2
}

# debian_mirror prints the URI of the machine's Debian archive (not its
# security archive), from the deb822 or the one-line sources.
debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -e $f ]] || continue
    awk '/^URIs:/ {uri=$2} /^Suites:/ {s=$0} /^$/ {if (uri ~ /debian$/ && s !~ /security/) {print uri; exit}; uri=""; s=""}
         END {if (uri ~ /debian$/ && s !~ /security/) print uri}' "$f" | head -n1
  done | head -n1
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -e $f ]] || continue
    awk '$1 == "deb" && $2 !~ /^\[/ && $2 ~ /debian\/?$/ && $3 !~ /security/ {print $2; exit}' "$f"
  done | head -n1
}

install_chromium() {
  command -v "${CHROMIUM:-chromium}" >/dev/null 2>&1 && return 0
  timed chromium apt_install chromium
}

install_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  # Only promtool is used; the package's own service is never started here.
  timed promtool apt_install prometheus
}

# Debian starts a package's service when it installs it; etcd's would take
# 127.0.0.1:2379 on a shared machine. A policy-rc.d that refuses every start
# is in place only while apt-get runs; then both services are stopped (if
# something started them anyway) and disabled. The tests start their own
# etcd and Patroni nodes on ports of their own and stop them.
install_patroni() {
  command -v patroni >/dev/null 2>&1 && command -v etcd >/dev/null 2>&1 && return 0
  timed "patroni and etcd-server" apt_install_no_start patroni etcd-server etcd-client
  local svc
  for svc in etcd patroni; do
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
      "${sudo[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
    if [[ -x /etc/init.d/$svc ]]; then
      "${sudo[@]}" /etc/init.d/"$svc" stop >/dev/null 2>&1 || true
      "${sudo[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  done
}

apt_install_no_start() {
  local policy=/usr/sbin/policy-rc.d had_policy=
  [[ -e $policy ]] && had_policy=1
  if [[ -z $had_policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
  fi
  local status=0
  apt_install "$@" || status=$?
  [[ -n $had_policy ]] || "${sudo[@]}" rm -f "$policy"
  return "$status"
}

compose_dir=.tools/compose
install_compose() {
  [[ -x $compose_dir/usr/bin/docker-compose ]] && return 0
  timed "compose v2" fetch_compose
}

fetch_compose() {
  local mirror state work
  mirror=$(debian_mirror)
  if [[ -z $mirror ]]; then
    echo "install-tools: no Debian archive found in the apt sources" >&2
    return 1
  fi
  state=$(mktemp -d)
  work=$(mktemp -d)
  mkdir -p "$state/lists/partial" "$state/archives/partial"
  cat >"$state/trixie.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  local opts=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$state"
    -o "Dir::State::Lists=$state/lists"
    -o "Dir::Cache=$state"
    -o "Dir::Cache::archives=$state/archives"
    -o "APT::Get::List-Cleanup=false"
    -o "APT::Sandbox::User=root"
  )
  apt-get "${opts[@]}" update -qq
  (cd "$work" && apt-get "${opts[@]}" download -qq docker-compose)
  rm -rf "$compose_dir"
  mkdir -p "$compose_dir"
  dpkg -x "$work"/docker-compose_*.deb "$compose_dir"
  rm -rf "$state" "$work"
  "$compose_dir/usr/bin/docker-compose" version >&2
}

[[ $# -gt 0 ]] || set -- chromium promtool compose patroni
for tool; do
  case $tool in
  chromium) install_chromium ;;
  promtool) install_promtool ;;
  compose) install_compose ;;
  patroni) install_patroni ;;
  *)
    echo "install-tools: unknown tool $tool (chromium, promtool, compose, patroni)" >&2
    exit 2
    ;;
  esac
done
