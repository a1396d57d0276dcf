#!/usr/bin/env bash
# Starts and stops the Docker engine the molecule scenarios use.
#
#   tools/docker.sh start    start dockerd unless one already answers; wait until `docker info` works
#   tools/docker.sh stop     stop the dockerd this script started (by the pid it recorded), nothing else
#   tools/docker.sh status   say whether an engine answers and whether this script started it
#
# The engine runs with the default bridge disabled and no iptables rules: every container of this
# project uses host networking and talks to servers on 127.0.0.1 only.
#
# Environment:
#   PANDORA_DOCKER_STATE    where the pidfile and the log go (default: .build/docker in the checkout)
#   PANDORA_DOCKER_DATA     dockerd --data-root (default /var/lib/docker, so built images stay cached)
#   PANDORA_DOCKER_STORAGE  storage driver; default: overlay2 when an overlay mount works on the
#                           data root's file system, else fuse-overlayfs when installed, else vfs
set -euo pipefail
cd "$(dirname "$0")/.."

state=${PANDORA_DOCKER_STATE:-$PWD/.build/docker}
data_root=${PANDORA_DOCKER_DATA:-/var/lib/docker}
pidfile=$state/dockerd.pid
logfile=$state/dockerd.log

log() { echo "docker.sh: $*" >&2; }

engine_answers() {
  timeout 10 docker info >/dev/null 2>&1
}

our_pid() {
  # The pid recorded by this script, if that process is still a dockerd.
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q dockerd || return 1
  echo "$pid"
}

overlay_works() {
  # A real overlay mount on the data root's file system (overlay2 refuses overlay-on-overlay,
  # which is what a machine that is itself a container often has).
  grep -qw overlay /proc/filesystems || modprobe overlay >/dev/null 2>&1 || return 1
  mkdir -p "$data_root"
  local probe rc=1
  probe=$(mktemp -d "$data_root/.overlay-probe.XXXXXX")
  mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
  echo probe > "$probe/lower/file"
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
      "$probe/merged" 2>/dev/null; then
    if echo changed > "$probe/merged/file" 2>/dev/null && [ "$(cat "$probe/lower/file")" = probe ]; then
      rc=0
    fi
    umount "$probe/merged" || true
  fi
  rm -rf "$probe"
  return $rc
}

choose_storage_driver() {
  if [ -n "${PANDORA_DOCKER_STORAGE:-}" ]; then echo "$PANDORA_DOCKER_STORAGE"; return; fi
  # Keep what an earlier run used: images are stored per driver.
  if [ -f "$data_root/.pandora-storage-driver" ]; then cat "$data_root/.pandora-storage-driver"; return; fi
  if overlay_works; then echo overlay2; return; fi
  if command -v fuse-overlayfs >/dev/null 2>&1 && [ -e /dev/fuse ]; then echo fuse-overlayfs; return; fi
  echo vfs
}

ensure_cgroups() {
  # dockerd needs a cgroup hierarchy; some sandboxes boot without one mounted.
  if ! grep -q cgroup /proc/self/mounts; then
    log "no cgroup file system mounted; mounting cgroup2 on /sys/fs/cgroup"
    mkdir -p /sys/fs/cgroup
    mount -t cgroup2 none /sys/fs/cgroup
  fi
}

start() {
  if engine_answers; then
    if our_pid >/dev/null; then log "dockerd (pid $(our_pid)) started earlier by this script is running"
    else log "a Docker engine already answers; using it (this script will not stop it)"; fi
    return 0
  fi
  command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || {
    log "dockerd is not installed; run tools/deps.sh (installs Debian's docker.io)"; exit 1; }
  local dockerd
  dockerd=$(command -v dockerd || echo /usr/sbin/dockerd)
  mkdir -p "$state" "$data_root"
  ensure_cgroups
  local driver
  driver=$(choose_storage_driver)
  log "starting dockerd (storage driver $driver, data root $data_root, log $logfile)"
  rm -f "$pidfile"
  setsid nohup "$dockerd" \
    --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --storage-driver="$driver" --data-root="$data_root" --pidfile="$pidfile" \
    --log-level=warn >>"$logfile" 2>&1 </dev/null &
  local launcher=$!
  for _ in $(seq 1 120); do
    if engine_answers; then
      echo "$driver" > "$data_root/.pandora-storage-driver"
      log "dockerd is up (pid $(cat "$pidfile"))"
      return 0
    fi
    if ! kill -0 "$launcher" 2>/dev/null; then
      log "dockerd exited during start-up; last lines of $logfile:"
      tail -n 20 "$logfile" >&2
      exit 1
    fi
    sleep 0.5
  done
  log "dockerd did not answer within 60 s; last lines of $logfile:"
  tail -n 20 "$logfile" >&2
  exit 1
}

stop() {
  local pid
  if ! pid=$(our_pid); then
    log "no dockerd started by this script is running; nothing to stop"
    rm -f "$pidfile"
    return 0
  fi
  log "stopping dockerd (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "dockerd stopped"; return 0; }
    sleep 0.5
  done
  log "dockerd (pid $pid) still running after 60 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

status() {
  if engine_answers; then
    if pid=$(our_pid); then echo "running (pid $pid, started by tools/docker.sh)"
    else echo "running (not started by tools/docker.sh)"; fi
  else
    echo "not running"; return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
