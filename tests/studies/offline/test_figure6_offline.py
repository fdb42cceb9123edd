"""``scripts/figure6_gpu.sh`` end to end on the CPU, as a GPU machine would run it, then
``robustness import`` of what it wrote.

The script runs in a subprocess whose Python refuses to import ray, mlflow, optuna and
fastapi (a ``sitecustomize`` on its path blocks them, as on a GPU machine that has only torch):
the run must succeed and leave none of them loaded. The data is a small real sample of the
shared CIFAR-10 archive (30 training and 10 test images per class, repacked in the same
layout); the grid is cut to one learning rate and one seed (3 configurations), 1 epoch.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from studies import tracking
from studies.analysis.report import load_summary
from studies.cli import main
from studies.offline.resultfiles import load_outdir

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "figure6_gpu.sh"
ARCHIVE_CANDIDATES = [
    REPO.parent / "shared/data/cifar10-jpeg75/cifar10-jpeg75.tar.gz",  # CI: beside the clone
    Path("/work/shared/data/cifar10-jpeg75/cifar10-jpeg75.tar.gz"),
]
BLOCKED = ("ray", "mlflow", "optuna", "fastapi")
SITECUSTOMIZE = f"""
import atexit, importlib.abc, json, os, sys

BLOCKED = {BLOCKED!r}
tried = []

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            tried.append(name)
            raise ImportError(f"{{name}} is blocked: not on the GPU machine")
        return None

sys.meta_path.insert(0, Blocker())

@atexit.register
def _report():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    with open(os.environ["IMPORT_REPORT"], "w") as fh:
        json.dump({{"loaded": loaded, "tried": tried}}, fh)
"""


def _shared_archive() -> Path | None:
    return next((p for p in ARCHIVE_CANDIDATES if p.is_file()), None)


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = _shared_archive()
    if source is None:
        pytest.skip(f"the CIFAR-10 archive is not here ({ARCHIVE_CANDIDATES[0]})")
    per_split = {"train": 30, "test": 10}
    taken: collections.Counter[tuple[str, str]] = collections.Counter()
    target = tmp_path_factory.mktemp("cifar") / "cifar10-small.tar.gz"
    with tarfile.open(source) as tin, tarfile.open(target, "w:gz") as tout:
        for member in tin:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] not in per_split:
                continue
            if taken[(parts[0], parts[1])] < per_split[parts[0]]:
                taken[(parts[0], parts[1])] += 1
                tout.addfile(member, tin.extractfile(member))
    assert len(taken) == 20  # every class of both splits
    return target


def test_figure6_script_on_the_cpu_then_import(small_archive: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    report = tmp_path / "imports.json"
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PYTHONPATH": str(site),
        "IMPORT_REPORT": str(report),
        "ROBUSTNESS_COMMIT": "0" * 40,
    }
    result = subprocess.run(
        [
            str(SCRIPT),
            str(out),
            "--epochs",
            "1",
            "--archive",
            str(small_archive),
            "--data-dir",
            str(tmp_path / "data"),
            "--set",
            "learning_rates=[0.01]",
            "--set",
            "seeds=[0]",
            "--subset",
            "200",  # 2 batches (128 + 72): the second step differs by optimizer
            "--threads",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    imports = json.loads(report.read_text())
    assert imports["loaded"] == [], imports

    run = load_outdir(out)
    assert [t.trial_id for t in run.trials] == [
        "sgd-lr0.01-none-s0",
        "adamw-lr0.01-none-s0",
        "radam-lr0.01-none-s0",
    ]
    assert run.spec.dataset == "cifar10" and run.spec.model == "resnet20"
    assert run.spec.epochs == 1 and run.spec.augment and run.spec.weight_decay == 1e-4
    assert all(t.epochs_done == 1 and t.status == "finished" for t in run.trials)
    assert run.run["commit"] == "0" * 40 and run.run["shortened"] is True
    assert run.run["packed"] is True  # the pack runner, not the one-at-a-time fallback
    assert run.run["parity"]["ok"] and run.run["plan"]["epochs"] == 1
    assert run.throughput["train_images_per_epoch"] == 200
    assert run.throughput["gpu"]["available"] is False
    # one epoch: no warm epoch alone to time, so no baseline is claimed
    assert all(m["alone_epoch_seconds"] is None for m in run.run["parity"]["members"])
    assert "one_at_a_time" not in run.throughput
    # real training: the second step tells the optimizers apart. AdamW's is adaptive from the
    # first update; RAdam's first updates are un-adapted momentum steps, as SGD's (Algorithm 2)
    loss = {t.optimizer: t.history["train_loss"][0] for t in run.trials}
    assert abs(loss["adamw"] - loss["sgd"]) > 1e-3
    assert loss["radam"] == pytest.approx(loss["sgd"], rel=1e-4)
    assert (tmp_path / "data" / "cifar10" / "train" / "airplane").is_dir()

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["import", str(out), "--tracking-uri", uri, "--out", str(tmp_path / "r")]) == 0
    study = tracking.store_for(uri).get_study(run.run_id or "")
    assert study.status == "succeeded" and study.name == "figure6"
    trials = tracking.store_for(uri).load_trials(study.study_id)
    assert sorted(t.trial_id for t in trials) == sorted(t.trial_id for t in run.trials)
    summary = load_summary(study.study_id, tracking_uri=uri)
    assert summary.trials_counted == 3 and summary.epochs == 1
    assert [o.optimizer for o in summary.optimizers] == ["radam", "adamw", "sgd"]
