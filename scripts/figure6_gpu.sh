#!/usr/bin/env bash
# Figure 6 (ResNet-20 on CIFAR-10, SGD/AdamW/RAdam x 4 lrs x 3 seeds) on one GPU machine that
# has python3 and torch but not this project's other dependencies (no Ray, MLflow, Optuna).
#
# Runs from the source tree (nothing installed): imports the CIFAR-10 archive, trains the 36
# configurations packed, and writes OUTDIR/trials/*.json (one per configuration), run.json
# and throughput.json. Bring OUTDIR back and record it with `robustness import OUTDIR`.
# What it does and the time-budget logic: python3 -m studies.offline.figure6 --help.
#
# Usage:
#   scripts/figure6_gpu.sh OUTDIR [--epochs N] [--time-budget S] [--archive PATH] [...]
#   scripts/figure6_gpu.sh "$OUT/figure6" --time-budget 480 --commit <sha>
#
# pydantic (studies/spec.py needs it) is used from the machine when present, else installed
# into .carry/site from the wheels in .carry/wheels (pip --no-index; or, without pip, the
# wheels unpacked, which is all an import needs). Fetch the wheels beforehand, online:
#   pip download --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .carry/wheels pydantic
# The archive (default: the first of .carry/cifar10-jpeg75.tar.gz, shared/data/cifar10-jpeg75/,
# ../shared/data/cifar10-jpeg75/ in the source tree) is unpacked once into the data folder.
# Environment: PYTHON (python3), WHEELS (.carry/wheels), SITE (.carry/site),
# ROBUSTNESS_DATA_DIR (where CIFAR-10 is unpacked; default .robustness/data),
# ROBUSTNESS_COMMIT (recorded in run.json; default git rev-parse HEAD where there is a .git).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WHEELS="${WHEELS:-$REPO/.carry/wheels}"
SITE="${SITE:-$REPO/.carry/site}"

die() {
  echo "figure6_gpu: $*" >&2
  exit 2
}

if [ "$#" -lt 1 ]; then
  die "usage: $0 OUTDIR [--epochs N] [--time-budget S] [--archive PATH] (see --help)"
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON on PATH (set PYTHON=...)"
"$PYTHON" -c 'import torch' 2>/dev/null || die "$PYTHON cannot import torch"

has_pydantic() {
  PYTHONPATH="$1" "$PYTHON" -c 'import pydantic' 2>/dev/null
}

if ! has_pydantic ""; then
  if ! has_pydantic "$SITE"; then
    [ -d "$WHEELS" ] || die "pydantic missing and no wheels in $WHEELS (see this script's header)"
    echo "figure6_gpu: installing pydantic from $WHEELS into $SITE" >&2
    mkdir -p "$SITE"
    if "$PYTHON" -m pip --version >/dev/null 2>&1; then
      "$PYTHON" -m pip install --quiet --no-index --find-links "$WHEELS" --target "$SITE" \
        --upgrade pydantic
    else
      "$PYTHON" - "$WHEELS" "$SITE" <<'PY'
import pathlib
import sys
import zipfile

wheels, site = map(pathlib.Path, sys.argv[1:])
for wheel in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
PY
    fi
    has_pydantic "$SITE" || die "pydantic still not importable from $SITE (wheels for this python?)"
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ -z "${ROBUSTNESS_COMMIT:-}" ] && command -v git >/dev/null 2>&1; then
  ROBUSTNESS_COMMIT="$(git -C "$REPO" rev-parse HEAD 2>/dev/null || true)"
  if [ -n "$ROBUSTNESS_COMMIT" ] && [ -n "$(git -C "$REPO" status --porcelain 2>/dev/null)" ]; then
    ROBUSTNESS_COMMIT="$ROBUSTNESS_COMMIT-dirty"  # the run's code is not that commit alone
  fi
  export ROBUSTNESS_COMMIT
fi

# From the caller's folder (OUTDIR and --archive may be relative to it); the code from REPO.
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m studies.offline.figure6 "$@"
