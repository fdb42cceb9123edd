"""The folder a run outside the cluster leaves behind, written and validated here.

Layout of ``OUTDIR`` (JSON in Python's dialect: a diverged epoch's test metrics are ``NaN``)::

    run.json                 the run: format, run_id, the study spec it trained, how many epochs
                             and why (budget), device, commit, packed, parity check, phases
    throughput.json          images/s per configuration and in all, epoch wall times, GPU
                             utilisation and memory (``"gpu": {"available": false, ...}`` on CPU)
    trials/<trial_id>.json   one per configuration: the fields of ``studies.results.TrialRecord``
                             (trial_id, optimizer, lr, warmup, warmup_steps, seed, status,
                             history, node, train_seconds; run_id, the MLflow run, is null)
                             plus ``format``, ``version``, ``offline_run_id`` (run.json's
                             ``run_id``), ``device`` and the whole ``spec``

``load_outdir`` reads a folder back for ``robustness import`` and refuses it as a whole, naming
the file, when anything is off: malformed JSON, a foreign format, specs that differ between
files, a configuration that is not in the spec's grid or comes twice, one that is missing, a
history with epochs missing (a finished trial holds every epoch of the spec; a diverged one
stops at its divergence), or a ``run.json`` that disagrees with the trial files. Nothing is
written to the records until the whole folder has passed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studies.errors import RobustnessError, SpecError
from studies.results import EPOCH_METRICS, TrialRecord
from studies.spec import StudySpec, TrialConfig

TRIAL_FORMAT = "radam-robustness.trial-result"
RUN_FORMAT = "radam-robustness.offline-run"
THROUGHPUT_FORMAT = "radam-robustness.throughput"
FORMAT_VERSION = 1

RUN_FILE = "run.json"
THROUGHPUT_FILE = "throughput.json"
TRIALS_DIR = "trials"

#: Statuses a trial may end a run with (a run's files hold no pending or running trials).
END_STATUSES: frozenset[str] = frozenset({"finished", "diverged", "failed"})
_TRIAL_FIELDS = ("trial_id", "optimizer", "lr", "warmup", "warmup_steps", "seed", "status")


class ResultFileError(RobustnessError, ValueError):
    """A results folder cannot be imported; the message names the file and what is wrong."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)


@dataclass(frozen=True)
class OfflineRun:
    """A validated results folder: the spec every file agrees on, one record per grid point
    (in the spec's grid order), and the run's manifest and throughput (empty when absent)."""

    out_dir: Path
    spec: StudySpec
    trials: list[TrialRecord]
    run: dict[str, Any] = field(default_factory=dict)
    throughput: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)  # trial_id -> device
    files: list[Path] = field(default_factory=list)

    @property
    def run_id(self) -> str | None:
        value = self.run.get("run_id")
        return str(value) if value else None


# --- writing ----------------------------------------------------------------------------------


def history_of(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Per-epoch metric rows (``studies.training.trial.EPOCH_KEYS``) as a record's curves."""
    return {name: [float(row[name]) for row in rows] for name in EPOCH_METRICS}


def trial_status(rows: Sequence[Mapping[str, Any]], *, epochs: int) -> str:
    """finished (every epoch), diverged (its last row says so) or failed (stopped short)."""
    if rows and rows[-1].get("diverged"):
        return "diverged"
    return "finished" if len(rows) == epochs else "failed"


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write atomically (temporary file, then rename): a killed run leaves whole files only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def write_trial(
    out_dir: Path,
    *,
    spec: StudySpec,
    config: TrialConfig,
    rows: Sequence[Mapping[str, Any]],
    run_id: str,
    device: str,
) -> Path:
    """``trials/<key>.json`` for one configuration from its per-epoch rows."""
    last = rows[-1] if rows else {}
    record = TrialRecord(
        trial_id=config.key,
        optimizer=config.optimizer,
        lr=config.lr,
        warmup=config.warmup,
        warmup_steps=config.warmup_steps,
        seed=config.seed,
        status=trial_status(rows, epochs=spec.epochs),  # type: ignore[arg-type]
        history=history_of(rows),
        node=str(last["node"]) if "node" in last else None,
        train_seconds=float(last["train_seconds"]) if "train_seconds" in last else None,
    )
    data = {
        "format": TRIAL_FORMAT,
        "version": FORMAT_VERSION,
        "device": device,
        "spec": spec.to_dict(),
        **dataclasses.asdict(record),  # run_id: the MLflow run, None until imported
        "offline_run_id": run_id,
    }
    return write_json(out_dir / TRIALS_DIR / f"{config.key}.json", data)


def throughput(
    spec: StudySpec,
    keys: Sequence[str],
    rows: Sequence[Sequence[Mapping[str, Any]]],
    *,
    num_train: int,
    epoch_times: Sequence[float],
    phases: Mapping[str, float],
    gpu: Mapping[str, Any],
    device: str,
    packed: bool,
    alone_epoch_seconds: Sequence[float] = (),
) -> dict[str, Any]:
    """``throughput.json``: training images per second, per configuration (its images over
    the wall time of the epochs it trained in: a packed member trains while the others do) and
    in all (every member's images over the run's wall time). A member's ``train_seconds`` is
    its share of the pack's time (the pack runner divides each epoch among its members), not
    its wall time, so it is not used here.

    ``alone_epoch_seconds``: warm epochs of single configurations trained alone on the same
    device (the parity check's); then ``one_at_a_time`` is what one trial per device gets
    (images over the mean of those epochs) and ``speedup_vs_one_at_a_time`` the pack's
    images/s in all over it: issue 12's ">= 10x the throughput of one trial per GPU"."""
    per_config: dict[str, float | None] = {}
    images = 0
    for key, member in zip(keys, rows, strict=True):
        images += len(member) * num_train
        wall = sum(epoch_times[int(row["epoch"]) - 1] for row in member)
        per_config[key] = len(member) * num_train / wall if wall else None
    train_wall = sum(epoch_times)
    packed_all = images / train_wall if train_wall else None
    return {
        "format": THROUGHPUT_FORMAT,
        "version": FORMAT_VERSION,
        "device": device,
        "packed": packed,
        "configurations": len(keys),
        "batch_size": spec.batch_size,
        "train_images_per_epoch": num_train,
        "epochs": spec.epochs,
        "epoch_seconds": list(epoch_times),
        "wall_seconds": dict(phases),
        "images_per_second": {
            "all": packed_all,
            "per_configuration": per_config,
        },
        "gpu": dict(gpu),
        **_speedup_over_alone(alone_epoch_seconds, num_train, packed_all),
    }


def _speedup_over_alone(
    epoch_seconds: Sequence[float], num_train: int, packed_all: float | None
) -> dict[str, Any]:
    timed = [float(s) for s in epoch_seconds if s > 0]
    if not timed:
        return {}
    alone = num_train / (sum(timed) / len(timed))
    return {
        "one_at_a_time": {"epoch_seconds": timed, "images_per_second": alone},
        "speedup_vs_one_at_a_time": packed_all / alone if packed_all else None,
    }


# --- reading and validating ---------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFileError(path, f"cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ResultFileError(path, f"is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ResultFileError(path, f"holds a JSON {type(data).__name__}, not an object")
    return data


def _check_format(path: Path, data: Mapping[str, Any], expected: str) -> None:
    if data.get("format") != expected:
        raise ResultFileError(path, f"format is {data.get('format')!r}, expected {expected!r}")
    if data.get("version") != FORMAT_VERSION:
        raise ResultFileError(
            path, f"format version {data.get('version')!r}; this tool reads {FORMAT_VERSION}"
        )


def _spec_of(path: Path, data: Mapping[str, Any]) -> StudySpec:
    raw = data.get("spec")
    if not isinstance(raw, dict):
        raise ResultFileError(path, "has no 'spec' object")
    try:
        return StudySpec.parse(raw)  # the size is admission's business, checked by the run
    except SpecError as exc:
        raise ResultFileError(path, f"its spec is invalid: {exc}") from None


def _first_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return f"{key}: {a.get(key)!r} vs {b.get(key)!r}"
    return "?"


def _history(path: Path, raw: Any, *, status: str, epochs: int) -> dict[str, list[float]]:
    if not isinstance(raw, dict):
        raise ResultFileError(path, "has no 'history' object")
    missing = [name for name in EPOCH_METRICS if name not in raw]
    if missing:
        raise ResultFileError(path, f"history lacks the curves {missing}")
    curves: dict[str, list[float]] = {}
    for name in EPOCH_METRICS:
        values = raw[name]
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise ResultFileError(path, f"history.{name} is not a list of numbers")
        curves[name] = [float(v) for v in values]
    lengths = {name: len(values) for name, values in curves.items()}
    if len(set(lengths.values())) != 1:
        raise ResultFileError(path, f"its curves have different lengths: {lengths}")
    done = lengths[EPOCH_METRICS[0]]
    if status == "finished" and done != epochs:
        raise ResultFileError(
            path, f"missing epochs: a finished trial has {done} of the spec's {epochs}"
        )
    if status == "diverged" and not 1 <= done <= epochs:
        raise ResultFileError(path, f"a diverged trial has {done} epochs (1..{epochs} expected)")
    if done > epochs:
        raise ResultFileError(path, f"{done} epochs, more than the spec's {epochs}")
    finite_acc = [v for v in curves["test_acc"] if math.isfinite(v)]
    if any(not 0.0 <= v <= 1.0 for v in finite_acc):
        raise ResultFileError(path, "test_acc must be fractions in [0, 1]")
    return curves


def _trial(
    path: Path, data: Mapping[str, Any], spec: StudySpec, grid: frozenset[str]
) -> TrialRecord:
    absent = [name for name in (*_TRIAL_FIELDS, "history") if name not in data]
    if absent:
        raise ResultFileError(path, f"lacks the fields {absent}")
    status = data["status"]
    if status not in END_STATUSES:
        raise ResultFileError(path, f"status {status!r}; a run's trials end {sorted(END_STATUSES)}")
    try:
        config = TrialConfig.model_validate({k: data[k] for k in _TRIAL_FIELDS[1:6]})
    except ValueError as exc:
        raise ResultFileError(path, f"not a valid configuration: {exc}") from None
    if data["trial_id"] != config.key:
        raise ResultFileError(
            path, f"trial_id {data['trial_id']!r} does not name its configuration ({config.key})"
        )
    if config.key not in grid:
        raise ResultFileError(path, f"{config.key} is not a configuration of the spec's grid")
    seconds = data.get("train_seconds")
    if seconds is not None and not isinstance(seconds, int | float):
        raise ResultFileError(path, "train_seconds is not a number")
    return TrialRecord(
        trial_id=config.key,
        optimizer=config.optimizer,
        lr=config.lr,
        warmup=config.warmup,
        warmup_steps=config.warmup_steps,
        seed=config.seed,
        status=status,
        history=_history(path, data["history"], status=status, epochs=spec.epochs),
        node=str(data["node"]) if data.get("node") else None,
        train_seconds=float(seconds) if seconds is not None else None,
    )


def load_outdir(out_dir: str | os.PathLike[str]) -> OfflineRun:
    """Read and validate a whole results folder; raise ``ResultFileError`` at the first fault."""
    root = Path(out_dir)
    trials_dir = root / TRIALS_DIR
    if not trials_dir.is_dir():
        raise ResultFileError(root, f"no {TRIALS_DIR}/ folder: not a results folder")
    files = sorted(trials_dir.glob("*.json"))
    if not files:
        raise ResultFileError(trials_dir, "holds no trial files (*.json)")
    spec: StudySpec | None = None
    grid: frozenset[str] = frozenset()
    spec_file = files[0]
    run_ids: set[str] = set()
    by_id: dict[str, tuple[Path, TrialRecord]] = {}
    devices: dict[str, str] = {}
    for path in files:
        data = _read_json(path)
        _check_format(path, data, TRIAL_FORMAT)
        this = _spec_of(path, data)
        if spec is None:
            spec = this
            grid = frozenset(c.key for c in spec.trial_configs())
        elif this != spec:
            diff = _first_difference(spec.to_dict(), this.to_dict())
            raise ResultFileError(path, f"its spec differs from {spec_file.name}'s ({diff})")
        record = _trial(path, data, spec, grid)
        if record.trial_id in by_id:
            raise ResultFileError(
                path, f"{record.trial_id} again (also in {by_id[record.trial_id][0].name})"
            )
        by_id[record.trial_id] = (path, record)
        devices[record.trial_id] = str(data.get("device") or "")
        if data.get("offline_run_id"):
            run_ids.add(str(data["offline_run_id"]))
    assert spec is not None
    missing = [c.key for c in spec.trial_configs() if c.key not in by_id]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise ResultFileError(
            trials_dir,
            f"{len(missing)} of the spec's {spec.num_trials} configurations missing: {shown}",
        )
    if len(run_ids) > 1:
        raise ResultFileError(trials_dir, f"trial files from different runs: {sorted(run_ids)}")
    run = _read_json(root / RUN_FILE) if (root / RUN_FILE).is_file() else {}
    if run:
        _check_format(root / RUN_FILE, run, RUN_FORMAT)
        if _spec_of(root / RUN_FILE, run) != spec:
            raise ResultFileError(root / RUN_FILE, f"its spec differs from {spec_file.name}'s")
        if run_ids and str(run.get("run_id")) not in run_ids:
            raise ResultFileError(
                root / RUN_FILE, f"run_id {run.get('run_id')!r}, the trials say {sorted(run_ids)}"
            )
    throughput = _read_json(root / THROUGHPUT_FILE) if (root / THROUGHPUT_FILE).is_file() else {}
    order = {c.key: i for i, c in enumerate(spec.trial_configs())}
    records = sorted((rec for _, rec in by_id.values()), key=lambda r: order[r.trial_id])
    extra = [root / name for name in (RUN_FILE, THROUGHPUT_FILE) if (root / name).is_file()]
    return OfflineRun(
        out_dir=root,
        spec=spec,
        trials=records,
        run=run,
        throughput=throughput,
        devices=devices,
        files=[*extra, *files],
    )
