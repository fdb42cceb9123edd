#!/usr/bin/env bash
# A private Docker daemon for this checkout, which creates no network interface: the compose
# test's engine (tests/deploy/test_compose_stack.py), and yours to poke at the stack by hand.
#
#   scripts/private_dockerd.sh start     # prints DOCKER_HOST=unix://...; export it
#   scripts/private_dockerd.sh status    # running (pid) or not
#   scripts/private_dockerd.sh stop      # SIGTERM to its pid, SIGKILL after 60 s
#   scripts/private_dockerd.sh du        # what its data-root holds on disk
#
# Everything lives under DOCKER_PRIVATE_ROOT (default .robustness/docker, ignored by git and by
# the build context; `make clean` stops the daemon and removes it): data-root root/ (images,
# build cache, volumes), exec-root exec/, the socket docker.sock, dockerd.pid, dockerd.log.
# No bridge, no iptables, no forwarding, no NAT, no userland proxy: containers can only use
# the host's network (network_mode: host) or none. Needs root and Debian's docker.io.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="${DOCKER_PRIVATE_ROOT:-$REPO/.robustness/docker}"
PIDFILE="$ROOT/dockerd.pid"
SOCKET="$ROOT/docker.sock"
LOG="$ROOT/dockerd.log"
DOCKER="${DOCKER:-/usr/bin/docker}"
[ -x "$DOCKER" ] || DOCKER=docker

running_pid() {  # the pid of this root's dockerd, if it runs
  local pid
  [ -s "$PIDFILE" ] || return 1
  pid="$(cat "$PIDFILE")"
  [ -d "/proc/$pid" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--pidfile $PIDFILE" || return 1
  echo "$pid"
}

start() {
  local pid deadline
  if pid="$(running_pid)"; then
    echo "DOCKER_HOST=unix://$SOCKET"
    echo "private_dockerd: already running (pid $pid)" >&2
    return 0
  fi
  command -v dockerd >/dev/null 2>&1 || {
    echo "private_dockerd: dockerd is not installed (apt-get install docker.io)" >&2
    return 69
  }
  mkdir -p "$ROOT/root" "$ROOT/exec"
  rm -f "$PIDFILE" "$SOCKET"
  # Its own session: a Ctrl-C in the caller's terminal does not reach it; `stop` does.
  setsid dockerd \
    --data-root "$ROOT/root" \
    --exec-root "$ROOT/exec" \
    --pidfile "$PIDFILE" \
    -H "unix://$SOCKET" \
    --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --userland-proxy=false \
    --storage-driver=overlay2 \
    >"$LOG" 2>&1 </dev/null &
  deadline=$((SECONDS + 60))
  until DOCKER_HOST="unix://$SOCKET" "$DOCKER" version >/dev/null 2>&1; do
    if ! kill -0 $! 2>/dev/null; then
      echo "private_dockerd: dockerd exited: $(tail -3 "$LOG")" >&2
      return 70
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "private_dockerd: no answer on $SOCKET after 60 s: $(tail -3 "$LOG")" >&2
      return 70
    fi
    sleep 0.5
  done
  echo "DOCKER_HOST=unix://$SOCKET"
  echo "private_dockerd: started (pid $(cat "$PIDFILE")), data-root $ROOT/root" >&2
}

stop() {
  local pid deadline
  if ! pid="$(running_pid)"; then
    unmount_leftovers
    echo "private_dockerd: not running" >&2
    return 0
  fi
  kill -TERM "$pid"
  deadline=$((SECONDS + 60))
  while [ -d "/proc/$pid" ] && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
  if [ -d "/proc/$pid" ]; then
    echo "private_dockerd: pid $pid still running after 60 s: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  unmount_leftovers
  echo "private_dockerd: stopped (pid $pid)" >&2
}

# What the daemon leaves mounted under its root once it is gone: the host's network namespace
# bound at exec/netns/default (libnetwork does not unmount it), an overlay of a container that
# was not stopped. Deepest first, so that `rm -rf` (make clean) can remove the folder.
unmount_leftovers() {
  local target
  awk -v root="$ROOT/" 'index($5, root) == 1 { print $5 }' /proc/self/mountinfo \
    | sort -r | while read -r target; do
        umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
      done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if pid="$(running_pid)"; then echo "running (pid $pid), DOCKER_HOST=unix://$SOCKET"; else echo "not running"; exit 3; fi
    ;;
  du) du -sh "$ROOT/root" 2>/dev/null || echo "no data-root at $ROOT/root" ;;
  *) echo "usage: $0 start|stop|status|du" >&2; exit 64 ;;
esac
