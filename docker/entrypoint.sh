#!/bin/bash
# The project image's entrypoint: one role per container.
#
#   api         the FastAPI service in cluster mode (RAY_ADDRESS, MLFLOW_TRACKING_URI, ...) on
#               API_HOST:API_PORT (default 0.0.0.0:8000)
#   ray-head    Ray's head: GCS on RAY_GCS_PORT (6379), dashboard and Jobs API on
#               RAY_DASHBOARD_HOST:RAY_DASHBOARD_LISTEN_PORT (0.0.0.0:8265); runs no trials
#               (--num-cpus=0 --num-gpus=0) unless RAY_HEAD_NUM_CPUS says otherwise
#   ray-worker  a Ray worker joining RAY_HEAD_ADDRESS (default ray-head:6379); it offers the
#               GPUs the container was given (RAY_WORKER_NUM_GPUS / _NUM_CPUS override)
#   anything else is run as a command (e.g. `robustness run figure6 ...`).
# Arguments after a role go to its command (`ray-worker --node-ip-address=...`). The defaults
# suit a container on a compose network; the host-network variant the compose test runs
# (scripts/compose_variants.py loopback) moves every listener to loopback with these.
#
# Started as root, it makes the writable directories (volumes and bind mounts arrive
# root-owned) and then drops to the unprivileged user `robustness`.
set -euo pipefail

RUN_AS="${ROBUSTNESS_RUN_AS:-robustness}"  # the unprivileged user of the image

require_ray_token() {
  if [ "${RAY_AUTH_MODE:-token}" = "token" ] && [ -z "${RAY_AUTH_TOKEN:-}" ]; then
    echo "robustness-entrypoint: RAY_AUTH_TOKEN is empty; set it in .env (see .env.example)" >&2
    exit 64
  fi
}

prepare_dirs() {
  local dirs=("${ROBUSTNESS_HOME:-/var/lib/robustness}")
  # A local storage path must exist and be writable on every node; s3:// needs nothing here.
  case "${ROBUSTNESS_STORAGE:-}" in
    "" | *://*) ;;
    *) dirs+=("$ROBUSTNESS_STORAGE") ;;
  esac
  mkdir -p "${dirs[@]}"
  if [ "$(id -u)" = 0 ]; then
    chown "$RUN_AS:$RUN_AS" "${dirs[@]}"
  fi
}

run() {
  if [ "$(id -u)" = 0 ]; then
    # Keep the environment (RAY_AUTH_TOKEN, MLFLOW_TRACKING_URI, ...): no --reset-env.
    exec setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- \
      env HOME="/home/$RUN_AS" USER="$RUN_AS" "$@"
  fi
  exec "$@"
}

role="${1:-api}"
case "$role" in
  api)
    shift || true
    prepare_dirs
    run robustness serve --host "${API_HOST:-0.0.0.0}" --port "${API_PORT:-8000}" "$@"
    ;;
  ray-head)
    shift
    require_ray_token
    prepare_dirs
    run ray start --head \
      --port="${RAY_GCS_PORT:-6379}" \
      --num-cpus="${RAY_HEAD_NUM_CPUS:-0}" \
      --num-gpus=0 \
      --dashboard-host="${RAY_DASHBOARD_HOST:-0.0.0.0}" \
      --dashboard-port="${RAY_DASHBOARD_LISTEN_PORT:-8265}" \
      --disable-usage-stats \
      --block "$@"
    ;;
  ray-worker)
    shift
    require_ray_token
    prepare_dirs
    extra=()
    if [ -n "${RAY_WORKER_NUM_GPUS:-}" ]; then extra+=("--num-gpus=$RAY_WORKER_NUM_GPUS"); fi
    if [ -n "${RAY_WORKER_NUM_CPUS:-}" ]; then extra+=("--num-cpus=$RAY_WORKER_NUM_CPUS"); fi
    run ray start \
      --address="${RAY_HEAD_ADDRESS:-ray-head:6379}" \
      --disable-usage-stats \
      --block "${extra[@]}" "$@"
    ;;
  *)
    prepare_dirs
    run "$@"
    ;;
esac
