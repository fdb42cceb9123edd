"""Runs made outside the cluster, brought into the records as a normal study.

``import_outdir(OUTDIR, tracking_uri=...)`` reads a results folder (``studies.offline.
resultfiles``: one file per configuration, ``run.json``, ``throughput.json``), validates all of
it, and only then writes: a parent run with the spec (the store's ``create_study``), tagged with
where it ran (``robustness.source=import``, device, node, commit, epochs run); a nested run per
configuration with its per-epoch metrics (``log_history``), its status, node and
training time, and the device as a param; the folder's files as artifacts under ``import/``;
then the summary, ``trials.csv`` and the figures (``report.finalize_study``, as the runner does
when a study ends) and the status ``succeeded`` (``failed`` when every trial failed).

The study id is the run's own id (``run.json``'s ``run_id``) unless one is given, so importing
the same folder twice is refused ("already imported") instead of making a second copy. Should
MLflow fail halfway through the writes, the study's runs are deleted again: an import is whole
or absent. ``robustness report ID`` and the service then serve it like any other study.
"""

from __future__ import annotations

import os
from pathlib import Path

from studies import tracking
from studies.analysis.report import finalize_study
from studies.errors import StudyNotFoundError, TrackingError
from studies.offline.resultfiles import OfflineRun, load_outdir
from studies.results import StudyRecord
from studies.spec import TrialConfig, trial_params
from studies.tracking.connection import TAG_NODE

TAG_SOURCE = "robustness.source"
TAG_DEVICE = "robustness.device"
TAG_COMMIT = "robustness.commit"
TAG_IMPORTED_FROM = "robustness.imported_from"
TAG_EPOCHS = "robustness.epochs_run"
ARTIFACT_DIR = "import"


def import_outdir(
    out_dir: str | os.PathLike[str],
    *,
    tracking_uri: str,
    study_id: str | None = None,
    report_dir: Path | None = None,
) -> tuple[StudyRecord, OfflineRun]:
    """Import the results folder ``out_dir`` as a study; return its record and the run read.

    Raises ``ResultFileError`` (nothing written) for a folder that does not validate and
    ``TrackingError`` when the study id exists already or MLflow fails (nothing left behind).
    """
    run = load_outdir(out_dir)
    wanted = study_id or run.run_id
    if wanted is not None and _exists(wanted, tracking_uri):
        if study_id is not None:
            raise TrackingError(f"a study with id {study_id!r} already exists")
        raise TrackingError(
            f"{Path(out_dir)} is already imported as study {wanted} "
            f"(robustness report {wanted}); give --study-id to import it again"
        )
    spec = run.spec
    store = tracking.store_for(tracking_uri)
    record = store.create_study(
        spec.to_dict(),
        study_id=wanted,
        num_trials=spec.num_trials,
        check_unique=False,  # checked above, with the message an import deserves
    )
    sid = record.study_id
    try:
        store.set_study_tags(sid, _study_tags(run))
        store.set_study_status(sid, "running")
        for trial in run.trials:
            config = TrialConfig(
                optimizer=trial.optimizer,
                lr=trial.lr,
                warmup=trial.warmup,  # type: ignore[arg-type]
                warmup_steps=trial.warmup_steps,
                seed=trial.seed,
            )
            params = {
                **trial_params(spec, config),
                "device": run.devices.get(trial.trial_id) or "unknown",
                "packed": run.run.get("packed"),
            }
            run_id = store.start_trial(sid, trial.trial_id, params)
            store.log_history(run_id, trial.history)
            store.end_trial(
                run_id,
                trial.status,
                node=trial.node,
                train_seconds=trial.train_seconds,
            )
        store.log_artifacts(sid, run.files, artifact_path=ARTIFACT_DIR)
        if all(trial.status == "failed" for trial in run.trials):
            store.set_study_status(
                sid,
                "failed",
                error=f"all {len(run.trials)} imported trials failed",
            )
        else:
            finalize_study(sid, tracking_uri=tracking_uri, out_dir=report_dir)
            store.set_study_status(sid, "succeeded")
    except BaseException:
        store.delete_study(sid)
        raise
    return store.get_study(sid), run


def _exists(study_id: str, tracking_uri: str) -> bool:
    try:
        tracking.store_for(tracking_uri).get_study(study_id)
    except StudyNotFoundError:
        return False
    return True


def _study_tags(run: OfflineRun) -> dict[str, str]:
    manifest = run.run
    devices = sorted({d for d in run.devices.values() if d})
    tags = {
        TAG_SOURCE: "import",
        TAG_IMPORTED_FROM: str(run.out_dir.resolve()),
        TAG_DEVICE: str(manifest.get("device") or ", ".join(devices) or "unknown"),
        TAG_EPOCHS: str(run.spec.epochs),
    }
    if manifest.get("commit"):
        tags[TAG_COMMIT] = str(manifest["commit"])
    if manifest.get("node"):
        tags[TAG_NODE] = str(manifest["node"])
    return tags
