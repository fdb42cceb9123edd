#!/usr/bin/env bash
# What `make test` needs beyond the Python packages: system tools that some tests use.
# Installed with apt-get where we are root and they are missing (saying so); otherwise the
# tests that need them skip and say why. Fashion-MNIST and CIFAR-10 are not installed here:
# the tests make their own small data, and `make run` fetches the dataset it needs.
set -euo pipefail

need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)     # MLflow on Postgres
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)         # checks the shipped scripts
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose) # the compose files, the stack
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)             # the compose stack's engine
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)       # its base images, no registry
command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 \
  || need+=(chromium-headless-shell)                                # what a browser shows

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test tools missing (the tests that use them will skip): ${need[*]}" >&2
  echo "  install them with: sudo apt-get install ${need[*]}" >&2
  exit 0
fi
echo "installing the test tools with apt-get: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# docker.io's postinst would start the system's dockerd, which makes the docker0 bridge: no
# service starts during the install (policy-rc.d says 101 where none says otherwise). The
# compose test runs its own daemon, without a bridge (scripts/private_dockerd.sh).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
