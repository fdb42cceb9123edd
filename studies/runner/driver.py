"""Run a study on Ray Tune and record it in MLflow: the one code path of the CLI and the service.

``run_study(study_id, tracking_uri=...)`` runs a study already created in MLflow
(``tracking.store_for(uri).create_study``); ``run_spec(spec, ...)`` creates then runs. What it claims (checked
in tests/studies/runner/test_runner.py and test_cli_run.py, on real Ray and SQLite MLflow):

- A grid is one ``tune.grid_search`` over the spec's ``TrialConfig`` points (the spec decides
  which optimizers cross which warmups); an ``optuna`` study is ``OptunaSearch`` (TPE, RDB
  storage ``paths.optuna_storage()``, one Optuna study per study id) over the optimizer, the
  log learning rate and the warmup, wrapped in ``Repeater`` so each sample runs once per seed.
- Each trial gets ``resources_per_trial`` (``tune.with_resources``); actors are reused and the
  dataset is cached per worker process; ``FailureConfig(max_failures)`` retries a crashed trial
  from its last checkpoint (one per epoch, the two latest kept).
- Only the driver talks to MLflow, from a Tune ``Callback``: a nested run per trial (started
  when the trial starts), one ``log_epoch`` per reported epoch (a pack's members: one
  ``log_epochs`` for all), the end status (finished/diverged/failed) and the node.
- Status: running while Tune runs; succeeded at the end (failed if every trial failed, or on
  an error); an interrupt (Ctrl-C, SIGTERM as sent by ``ray job stop``) ends with
  ``cancelled`` and Tune's experiment state saved, so ``resume=True`` continues it with
  ``Tuner.restore``: finished trials are not run again, interrupted ones continue from their
  last epoch. A study that ends with trials still open (interrupted) sets them ``pending``.
- A resumed study (after an interrupt, or a driver that died: Tune's saved state may be older
  than the record) never records an epoch twice nor reopens a trial the record has as
  finished: the record's epochs and finished trials are read first and skipped.
- The embedded default is a local Ray (``ray.init(address="local")``, never someone else's
  cluster) started and stopped here; with ``ray_address`` the runner connects to that cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import math
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import ray
from ray import tune
from ray.tune.logger import JsonLoggerCallback

from studies import paths
from studies.errors import ClusterError, StudyStateError
from studies.results import EPOCH_METRICS, StudyRecord
from studies.spec import StudySpec, TrialConfig, trial_params
from studies.status import COUNTED_TRIAL
from studies.training.pack import PackState
from studies.training.pack_plan import auto_pack_size, plan_packs
from studies.training.trainables import pack_result, train_pack
from studies.training.trial import TrialState, train_trial, trial_from_config


class _LazyModule:
    """A module imported on first use: Tune's workers import this module for
    ``tune_trainable`` and must not pay for MLflow (seconds), which only the driver uses."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


if TYPE_CHECKING:
    from studies import tracking
else:
    tracking = _LazyModule("studies.tracking")

# Quiet, fast Tune: no per-trial CSV/TensorBoard loggers (MLflow is the record), no
# de-duplicated log lines hiding a worker's error.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 is silent only with the old output
# A checkpoint per epoch of short trials snapshots the experiment often; that is intended.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# A driver killed outright (SIGKILL, OOM) leaves Tune's experiment state as last saved. Saved
# on every step of Tune's loop (not every ~10 s), with the two latest checkpoints of each trial
# kept, the state never names a checkpoint already deleted; with one kept and the default
# period, a resumed trial failed with "Could not recover from checkpoint as it does not exist".
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")


@dataclasses.dataclass
class StudyProgress:
    """Counts a progress display needs; ``best_acc`` is a fraction (last-epoch test_acc)."""

    study_id: str
    total: int
    finished: int = 0
    diverged: int = 0
    failed: int = 0
    running: int = 0
    started: int = 0  # trials started by this call (a resumed study skips the finished ones)
    best_acc: float | None = None
    best_trial: str | None = None
    interrupted: bool = False

    @property
    def done(self) -> int:
        return self.finished + self.diverged + self.failed


ProgressFn = Callable[[StudyProgress], None]
TrainableFn = Callable[[dict[str, Any]], None]


# --- the trainable Tune runs ----------------------------------------------------------------


class _TuneSession:
    """Reports and checkpoints a trial's epochs through Ray Tune (``studies.training.trial`` has
    no Ray Tune import of its own)."""

    def report(self, metrics: dict[str, Any], state: TrialState) -> None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="trial-state-") as tmp:
            state.save(tmp)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    def restore(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            return TrialState.read(directory)


class _TunePackSession:
    """Reports and checkpoints a pack's epochs through Ray Tune: one result per epoch holding
    every member's row and status (``studies.training.pack.pack_result``), one checkpoint holding every
    member's state."""

    def report(self, rows: list[dict[str, Any] | None], state: PackState) -> None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="pack-state-") as tmp:
            state.save(tmp)
            tune.report(pack_result(rows, state), checkpoint=tune.Checkpoint.from_directory(tmp))

    def restore(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            return PackState.read(directory)


def tune_trainable(config: dict[str, Any]) -> None:
    """The function trainable handed to Tune: a pack (``config["pack"]``) or one trial."""
    if "pack" in config:
        train_pack(config, session=_TunePackSession())
    else:
        train_trial(config, session=_TuneSession())


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)  # short, unique; the default repeats the whole config


# --- recording, in the driver ---------------------------------------------------------------


class RecordingCallback(tune.Callback):
    """Writes every trial to MLflow through ``studies.tracking`` and keeps the progress counts.

    It is pickled with Tune's experiment state; the progress display is not (it is attached
    again when a study resumes).
    """

    def __init__(self, study_id: str, spec: StudySpec, *, tracking_uri: str) -> None:
        self.study_id = study_id
        self.spec_json = spec.to_json()
        self.tracking_uri = tracking_uri
        self._setup_runtime(spec)

    def _setup_runtime(self, spec: StudySpec) -> None:
        self.spec = spec
        self.progress = StudyProgress(self.study_id, spec.num_trials)
        self.display: ProgressFn | None = None
        self.run_ids: dict[str, str] = {}  # Tune trial id -> MLflow run id
        self.keys: dict[str, str] = {}  # Tune trial id -> our trial key
        self.last_epoch: dict[str, int] = {}
        self.diverged: set[str] = set()
        self.ended: set[str] = set()
        # a resumed study: what the record already holds, by our trial key
        self.recorded_epochs: dict[str, int] = {}
        self.recorded_done: set[str] = set()
        self.replayed: set[str] = set()  # Tune trials of a key already recorded as done
        # Packs: each member has its own nested run, keyed by its grid point's key.
        self.packs: set[str] = set()  # Tune trial ids of packs started here
        self.member_runs: dict[str, str] = {}  # member key -> MLflow run id
        self.member_last_epoch: dict[str, int] = {}
        self.member_last_row: dict[str, dict[str, Any]] = {}
        self.members_ended: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "study_id": self.study_id,
            "spec_json": self.spec_json,
            "tracking_uri": self.tracking_uri,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup_runtime(StudySpec.from_json_cached(self.spec_json))

    def count_recorded(self) -> None:
        """Start the counts from what MLflow already holds (a resumed study). Failed trials
        are not counted: a resumed study runs them again."""
        for record in self.store.load_trials(self.study_id):
            self.recorded_epochs[record.trial_id] = record.epochs_done
            if record.status in COUNTED_TRIAL:
                self.recorded_done.add(record.trial_id)
                setattr(self.progress, record.status, getattr(self.progress, record.status) + 1)
                self._offer_best(record.trial_id, record.final_acc)
                self.members_ended.add(record.trial_id)  # a restored pack does not redo it

    @property
    def store(self) -> tracking.StudyStore:
        return tracking.store_for(self.tracking_uri)

    def _offer_best(self, key: str, acc: float | None) -> None:
        if acc is None or not math.isfinite(acc):
            return
        if self.progress.best_acc is None or acc > self.progress.best_acc:
            self.progress.best_acc, self.progress.best_trial = acc, key

    def _show(self) -> None:
        if self.display is not None:
            self.display(self.progress)

    def _key(self, trial: Any) -> tuple[str, TrialConfig]:
        cfg = trial_from_config(trial.config, self.spec)
        key = cfg.key if "trial" in trial.config else f"{cfg.key}-{trial.trial_id}"
        return key, cfg

    # Tune's hooks (all in the driver).

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if "pack" in trial.config:
            self._start_pack(trial)
            return
        # Tune calls this again when it retries a crashed trial (FailureConfig): the run is
        # reopened, but the trial was counted when it first started and is still running
        retried = trial.trial_id in self.run_ids or trial.trial_id in self.replayed
        key, cfg = self._key(trial)
        self.keys[trial.trial_id] = key
        if key in self.recorded_done:
            # Tune's saved state predates the trial's end (its driver died in between): the
            # record is complete, so Tune's re-run of it is not recorded
            self.replayed.add(trial.trial_id)
            return
        self.last_epoch.setdefault(trial.trial_id, self.recorded_epochs.get(key, 0))
        self.run_ids[trial.trial_id] = self.store.start_trial(
            self.study_id, key, trial_params(self.spec, cfg)
        )
        if not retried:
            self.progress.running += 1
            self.progress.started += 1
        self._show()

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        if "members" in result:
            self._pack_result(result)
            return
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None or "epoch" not in result:
            return
        epoch = int(result["epoch"])
        if epoch <= self.last_epoch.get(trial.trial_id, 0):
            return  # a retried trial reporting an epoch again
        self.last_epoch[trial.trial_id] = epoch
        # NaN kept: a diverged epoch's test metrics were not measured (tracking stores NaN)
        metrics = {name: float(result[name]) for name in EPOCH_METRICS if name in result}
        self.store.log_epoch(run_id, epoch, metrics)
        if result.get("diverged"):
            self.diverged.add(trial.trial_id)
        self._offer_best(self.keys[trial.trial_id], metrics.get("test_acc"))
        self._show()

    # Packs: one Tune trial, a nested run per member.

    def _start_pack(self, trial: Any) -> None:
        # A retried pack (FailureConfig) reopens its members' runs; they were counted once.
        retried = trial.trial_id in self.packs
        self.packs.add(trial.trial_id)
        opened = 0
        for raw in trial.config["pack"]:
            cfg = TrialConfig.model_validate(raw)
            if cfg.key in self.members_ended:
                continue
            self.member_last_epoch.setdefault(cfg.key, self.recorded_epochs.get(cfg.key, 0))
            self.member_runs[cfg.key] = self.store.start_trial(
                self.study_id, cfg.key, trial_params(self.spec, cfg)
            )
            opened += 1
        if not retried:
            self.progress.running += opened
            self.progress.started += opened
        self._show()

    def _pack_result(self, result: dict[str, Any]) -> None:
        # every member's epoch in one write (one transaction on a SQL store): the pack waits
        # in tune.report while this runs, so per-member writes would cost it K round trips
        rows: list[tuple[str, int, dict[str, float]]] = []
        ended: list[tuple[str, str]] = []
        for entry in result["members"]:
            key = str(entry["key"])
            run_id = self.member_runs.get(key)
            if run_id is None or key in self.members_ended:
                continue
            row = entry.get("row")
            if row is not None and int(row["epoch"]) > self.member_last_epoch.get(key, 0):
                epoch = int(row["epoch"])
                self.member_last_epoch[key] = epoch
                self.member_last_row[key] = row
                metrics = {name: float(row[name]) for name in EPOCH_METRICS if name in row}
                rows.append((run_id, epoch, metrics))
                self._offer_best(key, metrics.get("test_acc"))
            if entry["status"] != "running":
                ended.append((key, str(entry["status"])))
        self.store.log_epochs(rows)
        for key, status in ended:
            self._end_member(key, status)
        self._show()

    def _end_member(self, key: str, status: str) -> None:
        if key in self.members_ended or key not in self.member_runs:
            return
        self.members_ended.add(key)
        last = self.member_last_row.get(key, {})
        self.store.end_trial(
            self.member_runs[key],
            status,
            node=last.get("node"),
            train_seconds=last.get("train_seconds"),
        )
        self.progress.running = max(0, self.progress.running - 1)
        setattr(self.progress, status, getattr(self.progress, status) + 1)

    def _end_pack(self, trial: Any, status: str) -> None:
        """The pack's trial ended: members still open end with ``status``."""
        for raw in trial.config["pack"]:
            self._end_member(TrialConfig.model_validate(raw).key, status)
        self._show()

    def _end(self, trial: Any, status: str) -> None:
        if "pack" in trial.config:
            self._end_pack(trial, status)
            return
        if trial.trial_id in self.ended or trial.trial_id in self.replayed:
            return
        self.ended.add(trial.trial_id)
        last = trial.last_result or {}
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is not None:
            self.store.end_trial(
                run_id,
                status,
                node=last.get("node"),
                train_seconds=last.get("train_seconds"),
            )
        self.progress.running = max(0, self.progress.running - 1)
        setattr(self.progress, status, getattr(self.progress, status) + 1)
        self._show()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        # a pack's members have ended with their own statuses; one still open did not get
        # to its last epoch, so it is not finished
        status = "failed" if "pack" in trial.config else None
        self._end(trial, status or ("diverged" if trial.trial_id in self.diverged else "finished"))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._end(trial, "failed")


# --- building the Tuner ---------------------------------------------------------------------


class _OptunaSpace:
    """Optuna's define-by-run search space: the optimizer, its log lr, and its warmup when
    it warms up (a picklable callable: Tune saves the searcher with the experiment)."""

    def __init__(self, spec: StudySpec, constants: dict[str, Any]) -> None:
        self.spec_json = spec.to_json()
        self.constants = constants

    def __call__(self, trial: Any) -> dict[str, Any]:
        spec = StudySpec.from_json_cached(self.spec_json)
        optimizer = trial.suggest_categorical("optimizer", list(spec.optimizers))
        low, high = spec.lr_bounds()
        trial.suggest_float("lr", low, high, log=True)
        if optimizer in spec.warmup.optimizers and spec.warmup.kinds != ["none"]:
            kind = trial.suggest_categorical("warmup", list(spec.warmup.kinds))
            if kind == "linear":
                lo, hi = spec.search.warmup_steps_range or (
                    min(spec.warmup.steps),
                    max(spec.warmup.steps),
                )
                trial.suggest_int("warmup_steps", lo, hi, log=True)
        return dict(self.constants)


def _search_alg(spec: StudySpec, study_id: str, constants: dict[str, Any]) -> Any:
    import optuna
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    storage = optuna.storages.RDBStorage(paths.optuna_storage())
    searcher = OptunaSearch(
        space=_OptunaSpace(spec, constants),
        metric="objective",
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=spec.seeds[0]),
        study_name=study_id,
        storage=storage,
    )
    # Each sample once per seed; the searcher sees the mean over the seeds.
    return Repeater(searcher, repeat=len(spec.seeds), set_index=True)


def _with_resources(trainable_fn: TrainableFn, spec: StudySpec) -> Any:
    resources = spec.resources_per_trial
    return tune.with_resources(trainable_fn, {"cpu": resources.cpu, "gpu": resources.gpu})


def build_tuner(
    spec: StudySpec,
    study_id: str,
    callback: RecordingCallback,
    *,
    storage_path: Path,
    data_dir: str | None,
    skip_keys: frozenset[str] = frozenset(),
    trainable_fn: TrainableFn = tune_trainable,
    pack_size: int = 1,
) -> tune.Tuner:
    """A fresh Tuner for the study; grid points in ``skip_keys`` (already recorded) are left
    out. ``trainable_fn`` is the function Tune runs per trial (see ``run_study``); with
    ``pack_size`` > 1 a grid's points go in packs of at most that many, one Tune trial each
    (``studies.training.pack``)."""
    trainable = _with_resources(trainable_fn, spec)
    constants: dict[str, Any] = {"spec": spec.to_dict(), "data_dir": data_dir}
    if spec.search.kind == "grid" and pack_size > 1:
        todo = [c for c in spec.trial_configs() if c.key not in skip_keys]
        packs = [[c.model_dump() for c in pack] for pack in plan_packs(todo, pack_size)]
        param_space: dict[str, Any] = {**constants, "pack": tune.grid_search(packs)}
        tune_config = tune.TuneConfig(
            metric="objective",
            mode="max",
            reuse_actors=True,
            max_concurrent_trials=spec.max_concurrent_trials,
            trial_dirname_creator=_trial_dirname,
        )
    elif spec.search.kind == "grid":
        points = [c.model_dump() for c in spec.trial_configs() if c.key not in skip_keys]
        param_space = {**constants, "trial": tune.grid_search(points)}
        tune_config = tune.TuneConfig(
            metric="objective",
            mode="max",
            reuse_actors=True,
            max_concurrent_trials=spec.max_concurrent_trials,
            trial_dirname_creator=_trial_dirname,
        )
    else:
        param_space = {}
        tune_config = tune.TuneConfig(
            metric="objective",
            mode="max",
            search_alg=_search_alg(spec, study_id, constants),
            num_samples=spec.num_trials,
            reuse_actors=True,
            max_concurrent_trials=spec.max_concurrent_trials,
            trial_dirname_creator=_trial_dirname,
        )
    run_config = tune.RunConfig(
        name=study_id,
        storage_path=str(storage_path),
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),  # see TUNE_GLOBAL_CHECKPOINT_S
        # result.json only (what Tuner.restore reads back); no CSV or TensorBoard files
        callbacks=[callback, JsonLoggerCallback()],  # type: ignore[no-untyped-call]
        verbose=0,
        log_to_file=True,
    )
    return tune.Tuner(
        trainable, param_space=param_space, tune_config=tune_config, run_config=run_config
    )


def restore_tuner(
    experiment_dir: Path,
    callback: RecordingCallback,
    spec: StudySpec,
    *,
    trainable_fn: TrainableFn = tune_trainable,
) -> tune.Tuner:
    """Tune's saved experiment, with this call's recording callback in place of the saved one
    (whose progress display and MLflow run ids do not survive pickling)."""
    trainable = _with_resources(trainable_fn, spec)
    tuner = tune.Tuner.restore(
        str(experiment_dir), trainable=trainable, resume_unfinished=True, resume_errored=True
    )
    # Tuner.restore takes no RunConfig; the restored one is reachable only here.
    run_config = tuner._local_tuner.get_run_config()  # type: ignore[union-attr]
    run_config.callbacks = [callback, JsonLoggerCallback()]  # type: ignore[no-untyped-call]
    return tuner


# --- Ray --------------------------------------------------------------------------------------


@contextlib.contextmanager
def ray_session(ray_address: str | None) -> Iterator[None]:
    """Connect to ``ray_address``, or start an embedded local Ray; leave an already
    initialised Ray (a test's, the caller's) as it is, and stop only one started here."""
    if ray.is_initialized():
        yield
        return
    try:
        if ray_address:
            ray.init(address=ray_address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(
                address="local",
                num_cpus=os.cpu_count(),
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
    except Exception as exc:
        where = ray_address or "a local Ray"
        raise ClusterError(f"could not start or reach {where}: {exc}") from exc
    try:
        yield
    finally:
        ray.shutdown()


def check_cluster(spec: StudySpec) -> None:
    """Refuse up front a study whose trials the cluster cannot place (Tune would wait forever)."""
    available = ray.cluster_resources()  # type: ignore[no-untyped-call]
    want = spec.resources_per_trial
    cpus, gpus = float(available.get("CPU", 0)), float(available.get("GPU", 0))
    if want.gpu > 0 and gpus == 0:
        raise ClusterError(
            f"each trial asks for {want.gpu} GPU but the cluster has none; "
            "run with --set resources_per_trial.gpu=0 to train on CPUs"
        )
    if want.cpu > cpus:
        raise ClusterError(
            f"each trial asks for {want.cpu} CPUs but the cluster has {cpus:g}; "
            f"run with --set resources_per_trial.cpu={max(1, int(cpus))}"
        )


def resolve_pack_size(spec: StudySpec, *, pending: int) -> int:
    """The spec's ``pack_size``, with ``auto`` decided for this cluster: the pending grid
    points spread over the trials the cluster runs at once (``studies.training.pack.auto_pack_size``).
    Optuna studies run one configuration per trial."""
    if spec.search.kind != "grid":
        return 1
    if spec.pack_size != "auto":
        return spec.pack_size
    available = ray.cluster_resources()  # type: ignore[no-untyped-call]
    want = spec.resources_per_trial
    slots = int(float(available.get("CPU", 1)) // want.cpu)
    if want.gpu > 0:
        slots = min(slots, int(float(available.get("GPU", 0)) // want.gpu))
    if spec.max_concurrent_trials is not None:
        slots = min(slots, spec.max_concurrent_trials)
    return auto_pack_size(pending, slots=max(1, slots), gpu=want.gpu > 0)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (``ray job stop``, a container stop) ends the study as Ctrl-C does: Tune saves
    its state and stops, and the study is left resumable."""
    if sys.platform == "win32" or not _in_main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# --- running a study -------------------------------------------------------------------------


def run_study(
    study_id: str,
    *,
    tracking_uri: str,
    spec: StudySpec | None = None,
    ray_address: str | None = None,
    storage_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: ProgressFn | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    trainable_fn: TrainableFn = tune_trainable,
) -> StudyRecord:
    """Run the study ``study_id`` (created with ``store_for(uri).create_study``) to its end.

    Returns its record: ``succeeded``, ``failed`` (every trial failed) or ``cancelled``
    (interrupted; run again with ``resume=True``). Raises ``StudyStateError`` for a study
    that already succeeded, or one not queued without ``resume``.

    ``trainable_fn`` is the function Tune runs for each trial, ``tune_trainable`` unless a
    caller wraps it (tests/studies/runner/test_runner.py passes one that crashes a trial's worker
    once, to check that Tune retries it from its last checkpoint). It runs in Ray's workers,
    so it must pickle (cloudpickle: by value or importable there).

    ``spec`` is the study's, when the caller has already parsed it from the record (the CLI's
    ``--study-id`` checks its dataset first); else it is read from the record and parsed here.
    """
    store = tracking.store_for(tracking_uri)
    record = store.get_study(study_id)
    if record.status == "succeeded":
        raise StudyStateError(f"study {study_id} already succeeded; nothing to run")
    if record.status != "queued" and not resume:
        raise StudyStateError(
            f"study {study_id} is {record.status}; run it with --resume to continue it"
        )
    if spec is None:  # admitted when the study was created
        spec = StudySpec.parse(store.load_spec(study_id))
    storage = Path(storage_path) if storage_path is not None else paths.storage_path()
    data = str(Path(data_dir).resolve()) if data_dir is not None else str(paths.data_dir())
    callback = RecordingCallback(study_id, spec, tracking_uri=tracking_uri)
    callback.display = progress
    if resume:
        callback.count_recorded()
    store.set_study_status(study_id, "running")
    try:
        with ray_session(ray_address), _sigterm_interrupts():
            check_cluster(spec)
            experiment_dir = storage / study_id
            if resume and _restorable(experiment_dir):
                tuner = restore_tuner(experiment_dir, callback, spec, trainable_fn=trainable_fn)
            else:
                done = _recorded_keys(study_id, tracking_uri) if resume else frozenset()
                tuner = build_tuner(
                    spec,
                    study_id,
                    callback,
                    storage_path=storage,
                    data_dir=data,
                    skip_keys=done,
                    trainable_fn=trainable_fn,
                    pack_size=resolve_pack_size(spec, pending=spec.num_trials - len(done)),
                )
            tuner.fit()
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        store.settle_open_trials(study_id, "pending")
        store.set_study_status(
            study_id,
            "cancelled" if interrupted else "failed",
            error=None if interrupted else f"{type(exc).__name__}: {exc}",
        )
        raise
    counts = callback.progress
    if counts.done < counts.total:  # Tune stopped early: Ctrl-C or SIGTERM
        counts.interrupted = True
        if progress is not None:
            progress(counts)
        store.settle_open_trials(study_id, "pending")
        store.set_study_status(study_id, "cancelled")
    elif counts.failed == counts.total:
        store.set_study_status(
            study_id,
            "failed",
            error=f"all {counts.total} trials failed (see the trials' errors in {storage})",
        )
    else:
        _finalize(study_id, tracking_uri)
        store.set_study_status(study_id, "succeeded")
    return store.get_study(study_id)


def run_spec(
    spec: StudySpec,
    *,
    tracking_uri: str | None = None,
    ray_address: str | None = None,
    storage_path: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    study_id: str | None = None,
) -> StudyRecord:
    """Create the study in MLflow, then run it (``run_study``)."""
    uri = tracking_uri or paths.mlflow_uri()
    record = tracking.store_for(uri).create_study(
        spec.to_dict(), study_id=study_id, num_trials=spec.num_trials
    )
    return run_study(
        record.study_id,
        tracking_uri=uri,
        spec=spec,
        ray_address=ray_address,
        storage_path=storage_path,
        progress=progress,
        data_dir=data_dir,
    )


def _restorable(experiment_dir: Path) -> bool:
    """Tune can restore the experiment: its state exists and the newest state file reads.

    A driver SIGKILLed early (before Tune first flushed its state, seconds in) leaves empty
    state files, and ``Tuner.restore`` then runs trials without their configs. Such a folder
    is moved aside (``<id>.unrestorable-<n>``) and the study is built afresh, skipping the
    trials the record has as done; a trial it had started continues its record from the
    epoch after the last one recorded (it trains again from scratch, its earlier epochs are
    not logged twice)."""
    if not tune.Tuner.can_restore(str(experiment_dir)):
        return False
    states = sorted(experiment_dir.glob("experiment_state-*.json"))
    try:
        json.loads(states[-1].read_text()) if states else None
        return bool(states)
    except (OSError, ValueError):
        n = len(list(experiment_dir.parent.glob(f"{experiment_dir.name}.unrestorable-*")))
        experiment_dir.rename(experiment_dir.with_name(f"{experiment_dir.name}.unrestorable-{n}"))
        return False


def _recorded_keys(study_id: str, tracking_uri: str) -> frozenset[str]:
    return frozenset(
        t.trial_id
        for t in tracking.store_for(tracking_uri).load_trials(study_id)
        if t.status in COUNTED_TRIAL
    )


def _finalize(study_id: str, tracking_uri: str) -> None:
    """Summary and figures as artifacts; a failure here does not undo the trials."""
    try:
        from studies.analysis.report import finalize_study

        finalize_study(study_id, tracking_uri=tracking_uri)
    except Exception as exc:
        warnings.warn(f"study {study_id}: writing the summary failed: {exc}", stacklevel=2)


def experiment_dir(study_id: str, storage_path: str | os.PathLike[str] | None = None) -> Path:
    """Where Tune keeps a study's experiment state and checkpoints."""
    return (Path(storage_path) if storage_path is not None else paths.storage_path()) / study_id


__all__ = [
    "ProgressFn",
    "RecordingCallback",
    "StudyProgress",
    "experiment_dir",
    "run_spec",
    "run_study",
]
