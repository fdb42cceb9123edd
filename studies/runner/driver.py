"""Run a study to its end: ``run_study(study_id, tracking_uri=...)`` runs a study already
created in its store (``tracking.store_for(uri).create_study``); ``run_spec(spec, ...)``
creates then runs. Only the driver writes records, from its Tune callback
(``recording.RecordingCallback``).

Status: running while Tune runs; succeeded at the end (failed if every trial failed, or on an
error); an interrupt (Ctrl-C, SIGTERM as sent by ``ray job stop``) ends with ``cancelled`` and
Tune's experiment state saved, so ``resume=True`` continues it. A study that ends with trials
still open (interrupted) sets them ``pending``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from studies import paths, tracking
from studies.errors import StudyStateError
from studies.results import StudyRecord
from studies.runner.cluster import (
    check_cluster,
    ray_session,
    resolve_pack_size,
    sigterm_interrupts,
    unpacked_reason,
)
from studies.runner.recording import ProgressFn, RecordingCallback
from studies.runner.trainable import TrainableFn, tune_trainable
from studies.runner.tuner import build_tuner, restorable, restore_tuner
from studies.spec import StudySpec
from studies.status import COUNTED_TRIAL


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
        with ray_session(ray_address), sigterm_interrupts():
            check_cluster(spec)
            unpacked = unpacked_reason(spec)
            if unpacked is not None:  # the record says why the packs it asked for are not run
                store.set_study_tags(study_id, {"robustness.unpacked": unpacked})
            experiment_dir = storage / study_id
            if resume and restorable(experiment_dir):
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
    """Create the study in MLflow, then run it (``run_study``). A spec that did not come
    through the edge (``registry.admit``: ``robustness run``, the service) is admitted here, so
    its record names its workload's metric."""
    from studies.workloads import registry

    if spec.metric is None:
        spec = registry.admit(spec)
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
