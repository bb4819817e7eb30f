#!/usr/bin/env bash
# Finds, or installs, the tools some checks of `make test` need, and says
# what it does about each. What you already have wins: nothing is
# installed when it is found.
#
#   scripts/install-tools.sh chromium   headless Chromium, for the browser tests of /docs:
#                                       $CHROMIUM, else chromium on the PATH, else Debian's
#                                       package (apt-get, as root or with sudo)
#   scripts/install-tools.sh promtool   Prometheus's promtool, for the dashboard's config check:
#                                       promtool on the PATH, else unpacked from Debian's
#                                       prometheus package into .tools/prometheus/
#   scripts/install-tools.sh compose    Docker Compose v2, to render the compose file without a
#                                       Docker engine: $DOCKER_COMPOSE, else unpacked from
#                                       Debian trixie's docker-compose package into .tools/compose/
#   scripts/install-tools.sh patroni    Debian's patroni (3.0) and etcd-server (3.4), for the
#                                       tests that run each database on a Patroni cluster over
#                                       the machine's PostgreSQL binaries (apt-get, as root or
#                                       with sudo; their services are kept from starting)
#
# Unpacked means fetched with apt-get download through a sources list of
# its own (Debian main, from the machine's own mirror and keyring)
# and extracted with dpkg -x: nothing goes into the system, no root is
# needed, and no service starts. (Debian's prometheus package, installed,
# would start a server on :9090; bookworm's Compose is 1.29, which predates
# profiles.) Chromium cannot be had that way and is installed for real,
# only where the distribution's package is the browser itself (Ubuntu's is
# a stand-in for a snap).
#
# A tool it cannot find or get is not an error here: it says so and why,
# and the tests that need the tool are then skipped, with make test's last
# line saying so (under CI=true they fail). Runs under bash 3.2 (macOS).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "install-tools: $*" >&2; }

# os_id prints the distribution's ID from os-release, or the kernel's name.
os_id() {
  if [[ -r /etc/os-release ]]; then
    (. /etc/os-release && echo "${ID:-unknown}")
  else
    uname -s
  fi
}

# as_root CMD... runs CMD as root: directly, or with sudo if it needs no
# password. Fails, saying nothing, if neither is possible.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    return 1
  fi
}

# can_apt WHAT: whether Debian's packages can be fetched here; says why not.
can_apt() {
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
    say "not getting $1: no apt-get here ($(os_id)); $2"
    return 1
  fi
}

# timed NAME CMD... runs CMD and says how long it took.
timed() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  say "$name: done in $((SECONDS - start)) s"
}

install_chromium() {
  local hint="install Chromium and set CHROMIUM to its binary (README, \"Troubleshooting\")"
  if [[ -n ${CHROMIUM:-} ]]; then
    if command -v "$CHROMIUM" >/dev/null 2>&1; then
      return 0
    fi
    say "CHROMIUM=$CHROMIUM is not an executable; not installing another: the browser tests will be skipped"
    return 0
  fi
  command -v chromium >/dev/null 2>&1 && return 0
  can_apt chromium "$hint" || return 0
  if [[ $(os_id) == ubuntu ]]; then
    say "not installing chromium: Ubuntu's package only installs a snap; $hint"
    return 0
  fi
  if ! as_root true; then
    say "not installing chromium: it needs root, or sudo without a password; $hint"
    return 0
  fi
  say "chromium: installing Debian's chromium package with apt-get (about 300 MB, once)"
  timed chromium apt_install chromium
}

apt_updated=
apt_install() {
  if [[ -z $apt_updated ]]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Debian starts a package's service when it installs it; etcd's would take
# 127.0.0.1:2379 on a shared machine. A policy-rc.d that refuses every start
# is in place only while apt-get runs; then both services are stopped (if
# something started them anyway) and disabled. The tests start their own
# etcd and Patroni nodes on ports of their own and stop them.
install_patroni() {
  command -v patroni >/dev/null 2>&1 && command -v etcd >/dev/null 2>&1 && return 0
  local hint="the Patroni tests will be skipped; install patroni and etcd yourself"
  can_apt patroni "$hint" || return 0
  if ! as_root true; then
    say "not installing patroni and etcd-server: it needs root, or sudo without a password; $hint"
    return 0
  fi
  say "patroni: installing Debian's patroni, etcd-server and etcd-client with apt-get, their services kept stopped"
  timed "patroni and etcd-server" apt_install_no_start patroni etcd-server etcd-client
  local svc
  for svc in etcd patroni; do
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
      as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
    if [[ -x /etc/init.d/$svc ]]; then
      as_root /etc/init.d/"$svc" stop >/dev/null 2>&1 || true
      as_root update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  done
}

apt_install_no_start() {
  local policy=/usr/sbin/policy-rc.d had_policy=
  [[ -e $policy ]] && had_policy=1
  if [[ -z $had_policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
  fi
  local status=0
  apt_install "$@" || status=$?
  [[ -n $had_policy ]] || as_root rm -f "$policy"
  return "$status"
}

promtool_dir=.tools/prometheus
install_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  [[ -x $promtool_dir/usr/bin/promtool ]] && return 0
  can_apt promtool "put Prometheus's promtool on the PATH" || return 0
  local suite
  suite=$( (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}"))
  if [[ $(os_id) != debian || -z $suite ]]; then
    say "not getting promtool: not Debian ($(os_id)); put Prometheus's promtool on the PATH"
    return 0
  fi
  # The machine's own release: trixie's prometheus package no longer holds promtool.
  say "promtool: unpacking Debian $suite's prometheus package into $promtool_dir (no install, no service)"
  timed promtool unpack_deb "$suite" prometheus "$promtool_dir" || say "promtool: could not fetch it; its test will be skipped"
}

compose_dir=.tools/compose
install_compose() {
  if [[ -n ${DOCKER_COMPOSE:-} ]]; then
    command -v "$DOCKER_COMPOSE" >/dev/null 2>&1 && return 0
    say "DOCKER_COMPOSE=$DOCKER_COMPOSE is not an executable; not fetching another: the compose tests will be skipped"
    return 0
  fi
  [[ -x $compose_dir/usr/bin/docker-compose ]] && return 0
  can_apt "Compose v2" "set DOCKER_COMPOSE to a Compose v2 binary" || return 0
  say "compose: unpacking Debian trixie's docker-compose (v2) into $compose_dir (no install)"
  timed compose unpack_deb trixie docker-compose "$compose_dir" || say "compose: could not fetch it; the compose tests will be skipped"
  [[ -x $compose_dir/usr/bin/docker-compose ]] && "$compose_dir/usr/bin/docker-compose" version >&2
  return 0
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

# unpack_deb SUITE PACKAGE DIR: Debian SUITE's PACKAGE, extracted into DIR.
unpack_deb() {
  local suite=$1 package=$2 dir=$3 mirror state work
  mirror=$(debian_mirror)
  if [[ -z $mirror ]]; then
    say "no Debian archive found in the apt sources"
    return 1
  fi
  state=$(mktemp -d)
  work=$(mktemp -d)
  mkdir -p "$state/lists/partial" "$state/archives/partial"
  cat >"$state/$suite.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  local opts=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$state"
    -o "Dir::State::Lists=$state/lists"
    -o "Dir::State::status=/dev/null"
    -o "Dir::Cache=$state"
    -o "Dir::Cache::archives=$state/archives"
    -o "Debug::NoLocking=true"
    -o "APT::Get::List-Cleanup=false"
    -o "APT::Sandbox::User=$(id -un)"
  )
  local status=0
  apt-get "${opts[@]}" update -qq &&
    (cd "$work" && apt-get "${opts[@]}" download -qq "$package") &&
    rm -rf "$dir" && mkdir -p "$dir" &&
    dpkg -x "$work/${package}"_*.deb "$dir" || status=$?
  rm -rf "$state" "$work"
  return "$status"
}

[[ $# -gt 0 ]] || set -- chromium promtool compose patroni
for tool; do
  case $tool in
  chromium) install_chromium ;;
  promtool) install_promtool ;;
  compose) install_compose ;;
  patroni) install_patroni ;;
  *)
    say "unknown tool $tool (chromium, promtool, compose, patroni)"
    exit 2
    ;;
  esac
done
