#!/usr/bin/env bash
# A short figure6 study on a real GPU host, several trials packed on each GPU; prints throughput.
#
# It runs `robustness run figure6` for a few epochs on a local Ray that sees this host's GPUs
# (MLflow in SQLite under a temporary home), samples nvidia-smi while it runs, and prints:
# trials, wall time, end-to-end images/s, per-trial training images/s and peak GPU use.
#
# Usage (the project installed, CIFAR-10 image folders under $ROBUSTNESS_DATA_DIR or
# ./.robustness/data):
#   scripts/gpu_smoke.sh
#   EPOCHS=3 GPU_PER_TRIAL=0.5 scripts/gpu_smoke.sh
#   scripts/gpu_smoke.sh --ray-address auto          # extra arguments go to `robustness run`
# In the project image, on a GPU host:
#   docker run --rm --gpus all --shm-size 16g -v "$PWD/scripts:/scripts:ro" \
#     -v "$PWD/.robustness/data:/data:ro" radam-robustness:latest /scripts/gpu_smoke.sh
#
# Knobs (environment): EPOCHS (2), GPU_PER_TRIAL (0.25: four trials per GPU), CPU_PER_TRIAL
# (1), TRAIN_SUBSET (empty: all 50,000 training images), SEEDS ([0]), KEEP_HOME (1: keep the
# temporary MLflow home), SMOKE_DRY_RUN (1: validate the study and print the command only).
set -euo pipefail

EPOCHS="${EPOCHS:-2}"                  # epochs per trial
GPU_PER_TRIAL="${GPU_PER_TRIAL:-0.25}"  # GPUs per trial (fraction: trials packed per GPU)
CPU_PER_TRIAL="${CPU_PER_TRIAL:-1}"     # CPU cores per trial
TRAIN_SUBSET="${TRAIN_SUBSET:-}"        # training images per epoch; empty: all of them
SEEDS="${SEEDS:-[0]}"
CIFAR10_TRAIN_IMAGES=50000

ROBUSTNESS="${ROBUSTNESS:-}"
if [ -z "$ROBUSTNESS" ]; then
  if command -v robustness >/dev/null 2>&1; then
    ROBUSTNESS=robustness
  elif [ -x .venv/bin/robustness ]; then
    ROBUSTNESS=.venv/bin/robustness
  else
    echo "gpu_smoke: no 'robustness' command (install the project, or set ROBUSTNESS=...)" >&2
    exit 2
  fi
fi
PYTHON="$(dirname "$(command -v "$ROBUSTNESS")")/python"
[ -x "$PYTHON" ] || PYTHON=python3

sets=(
  --set "epochs=$EPOCHS"
  --set "seeds=$SEEDS"
  --set "lr_milestones=[]"  # the paper's decay epochs (81, 122) lie beyond a short run
  --set "resources_per_trial.gpu=$GPU_PER_TRIAL"
  --set "resources_per_trial.cpu=$CPU_PER_TRIAL"
)
if [ -n "$TRAIN_SUBSET" ]; then
  sets+=(--set "train_subset=$TRAIN_SUBSET")
fi

# Validate the study first (no GPU needed) and learn its size.
dry_err="$(mktemp)"
if ! "$ROBUSTNESS" run figure6 "${sets[@]}" --dry-run "$@" >/dev/null 2>"$dry_err"; then
  cat "$dry_err" >&2
  rm -f "$dry_err"
  exit 2
fi
trials="$(grep -Eo '^[0-9]+ trials' "$dry_err" | tail -n 1 | cut -d' ' -f1)"
rm -f "$dry_err"
images_per_epoch="${TRAIN_SUBSET:-$CIFAR10_TRAIN_IMAGES}"
echo "gpu_smoke: figure6, $trials trials x $EPOCHS epochs x $images_per_epoch images," \
  "$GPU_PER_TRIAL GPU and $CPU_PER_TRIAL CPU per trial"

if [ "${SMOKE_DRY_RUN:-0}" = 1 ]; then
  echo "gpu_smoke: would run: $ROBUSTNESS run figure6 ${sets[*]} $*"
  exit 0
fi

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu_smoke: nvidia-smi not found: this script is for a GPU host" >&2
  exit 2
fi
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_smoke: torch sees no CUDA device (driver, container toolkit, --gpus all?)" >&2
  exit 2
fi
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader \
  | sed 's/^/gpu_smoke: GPU /'

# A temporary home: this study's MLflow store and Ray results do not mix with real ones.
# The datasets stay where they are.
export ROBUSTNESS_DATA_DIR="${ROBUSTNESS_DATA_DIR:-${DATA_DIR:-$PWD/.robustness/data}}"
ROBUSTNESS_HOME="$(mktemp -d "${TMPDIR:-/tmp}/gpu_smoke.XXXXXX")"
export ROBUSTNESS_HOME
export MLFLOW_TRACKING_URI="sqlite:///$ROBUSTNESS_HOME/mlflow.db"
export ROBUSTNESS_STORAGE="$ROBUSTNESS_HOME/ray_results"
unset ROBUSTNESS_OPTUNA_STORAGE

sampler_pid=""
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  if [ -n "$sampler_pid" ]; then
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
  fi
  if [ "${KEEP_HOME:-0}" != 1 ]; then
    rm -rf "$ROBUSTNESS_HOME"
  fi
}
trap cleanup EXIT

# GPU utilisation, memory and compute processes every 2 s, while the study runs.
gpu_log="$ROBUSTNESS_HOME/gpu.csv"
(
  while true; do
    apps="$(nvidia-smi --query-compute-apps=pid --format=csv,noheader 2>/dev/null | grep -c . || true)"
    nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits \
      | sed "s/\$/, $apps/"
    sleep 2
  done
) >"$gpu_log" 2>/dev/null &
sampler_pid=$!

outcome="$ROBUSTNESS_HOME/outcome.json"
start="$(date +%s.%N)"
status=0
"$ROBUSTNESS" run figure6 "${sets[@]}" "$@" >"$outcome" || status=$?
end="$(date +%s.%N)"

"$PYTHON" - "$outcome" "$gpu_log" "$start" "$end" "$trials" "$EPOCHS" "$images_per_epoch" <<'PY'
import json
import sys

outcome_path, gpu_log, start, end, trials, epochs, per_epoch = sys.argv[1:]
wall = float(end) - float(start)
images = int(trials) * int(epochs) * int(per_epoch)
print(f"gpu_smoke: wall {wall:.1f} s for {trials} trials; end to end {images / wall:,.0f} images/s "
      "(start-up and evaluation included)")

rows = []
for line in open(gpu_log):
    parts = [p.strip() for p in line.split(",")]
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        rows.append(tuple(int(p) for p in parts))
if rows:
    print(f"gpu_smoke: peak GPU utilisation {max(r[1] for r in rows)} %, "
          f"peak memory {max(r[2] for r in rows)} MiB, "
          f"peak compute processes {max(r[3] for r in rows)} (0 inside a container's PID namespace)")

lines = [line for line in open(outcome_path) if line.startswith("{")]
if not lines:
    sys.exit("gpu_smoke: the study printed no outcome")
outcome = json.loads(lines[-1])
print(f"gpu_smoke: study {outcome['study_id']} {outcome['status']}")
try:
    from studies.tracking import load_trials

    records = load_trials(outcome["study_id"], tracking_uri=outcome["tracking_uri"])
except Exception as exc:  # the figures above stand without the per-trial ones
    sys.exit(f"gpu_smoke: no per-trial figures ({exc})")
timed = [r for r in records if r.train_seconds]
if timed:
    rates = sorted(int(epochs) * int(per_epoch) / r.train_seconds for r in timed)
    nodes = sorted({r.node or "?" for r in records})
    print(f"gpu_smoke: per-trial training images/s: min {rates[0]:,.0f}, "
          f"median {rates[len(rates) // 2]:,.0f}, max {rates[-1]:,.0f} "
          f"({len(timed)} trials on {', '.join(nodes)})")
    in_flight = sum(r.train_seconds for r in timed) / wall
    print(f"gpu_smoke: {in_flight:.1f} trials training at once on average (packing)")
PY
exit "$status"
