"""The records of every study, in MLflow: the only package of the project that imports
``mlflow``.

Use a store: ``store_for(tracking_uri)`` gives the ``StudyStore`` of a tracking URI (see
``store`` for the contract). The package is split along the store's seams: ``connection``
(client, tags, errors), ``studies`` (parent runs), ``trials`` (nested runs), ``reads`` (live
trial reads: SQL tables straight, or a tracking server's bulk endpoint), ``snapshots``
(``trials.json``), ``artifacts``, ``links`` (MLflow UI addresses).

The module-level functions below (``create_study(..., tracking_uri=...)`` and the rest) are
the old API, kept as thin wrappers over ``store_for(tracking_uri)`` while callers move to
the store: deprecated, to be removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from studies.errors import StudyNotFoundError, TrackingError
from studies.results import StudyRecord, TrialRecord
from studies.status import StudyStatus, TrialStatus
from studies.tracking.artifacts import ArtifactNotFoundError
from studies.tracking.connection import DEFAULT_EXPERIMENT
from studies.tracking.links import compare_runs_url, study_run_url, study_ui_url
from studies.tracking.snapshots import trials_from_json, trials_to_json
from studies.tracking.store import MlflowStudyStore, StudyStore, forget_stores, store_for
from studies.tracking.studies import flatten

# The old names of the status sets (studies.status owns them).
STUDY_STATUSES: tuple[str, ...] = tuple(StudyStatus)
TRIAL_STATUSES: tuple[str, ...] = tuple(TrialStatus)


def clear_caches() -> None:
    """Forget every store (deprecated name of ``forget_stores``)."""
    forget_stores()


# ---- deprecated wrappers: the old free functions, over store_for(tracking_uri) ------------


def create_study(
    spec: Mapping[str, Any],
    *,
    tracking_uri: str,
    study_id: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    num_trials: int | None = None,
    check_unique: bool = True,
    details: bool = True,
) -> StudyRecord:
    return store_for(tracking_uri).create_study(
        spec,
        study_id=study_id,
        experiment=experiment,
        num_trials=num_trials,
        check_unique=check_unique,
        details=details,
    )


def write_study_details(study_id: str, *, tracking_uri: str) -> None:
    store_for(tracking_uri).write_study_details(study_id)


def get_study(study_id: str, *, tracking_uri: str) -> StudyRecord:
    return store_for(tracking_uri).get_study(study_id)


def load_spec(study_id: str, *, tracking_uri: str) -> dict[str, object]:
    return store_for(tracking_uri).load_spec(study_id)


def list_studies(
    *,
    tracking_uri: str,
    status: StudyStatus | str | None = None,
    limit: int = 100,
    offset: int = 0,
    experiment: str | None = None,
) -> list[StudyRecord]:
    return store_for(tracking_uri).list_studies(
        status=status, limit=limit, offset=offset, experiment=experiment
    )


def count_studies(*, tracking_uri: str, statuses: Sequence[StudyStatus | str], limit: int) -> int:
    return store_for(tracking_uri).count_studies(statuses=statuses, limit=limit)


def set_study_status(
    study_id: str,
    status: StudyStatus | str,
    *,
    tracking_uri: str,
    error: str | None = None,
    snapshot: bool = True,
) -> None:
    store_for(tracking_uri).set_study_status(study_id, status, error=error, snapshot=snapshot)


def set_study_tags(study_id: str, tags: Mapping[str, str], *, tracking_uri: str) -> None:
    store_for(tracking_uri).set_study_tags(study_id, tags)


def delete_study(study_id: str, *, tracking_uri: str) -> None:
    store_for(tracking_uri).delete_study(study_id)


def start_trial(
    study_id: str, trial_id: str, params: Mapping[str, Any], *, tracking_uri: str
) -> str:
    return store_for(tracking_uri).start_trial(study_id, trial_id, params)


def log_epoch(run_id: str, epoch: int, metrics: Mapping[str, float], *, tracking_uri: str) -> None:
    store_for(tracking_uri).log_epoch(run_id, epoch, metrics)


def log_history(
    run_id: str,
    history: Mapping[str, Sequence[float]],
    *,
    tracking_uri: str,
    first_epoch: int = 1,
) -> None:
    store_for(tracking_uri).log_history(run_id, history, first_epoch=first_epoch)


def end_trial(
    run_id: str,
    status: TrialStatus | str,
    *,
    tracking_uri: str,
    node: str | None = None,
    train_seconds: float | None = None,
) -> None:
    store_for(tracking_uri).end_trial(run_id, status, node=node, train_seconds=train_seconds)


def load_trials(study_id: str, *, tracking_uri: str) -> list[TrialRecord]:
    return store_for(tracking_uri).load_trials(study_id)


def snapshot_trials(study_id: str, *, tracking_uri: str) -> list[TrialRecord]:
    return store_for(tracking_uri).snapshot_trials(study_id)


def log_study_artifacts(
    study_id: str,
    paths: Iterable[str | Path],
    *,
    tracking_uri: str,
    artifact_path: str | None = None,
) -> None:
    store_for(tracking_uri).log_artifacts(study_id, paths, artifact_path=artifact_path)


def list_study_artifacts(study_id: str, *, tracking_uri: str, path: str | None = None) -> list[str]:
    return store_for(tracking_uri).list_artifacts(study_id, path=path)


def download_study_artifact(study_id: str, name: str, *, tracking_uri: str) -> bytes:
    return store_for(tracking_uri).download_artifact(study_id, name)


__all__ = [
    "DEFAULT_EXPERIMENT",
    "STUDY_STATUSES",
    "TRIAL_STATUSES",
    "ArtifactNotFoundError",
    "MlflowStudyStore",
    "StudyNotFoundError",
    "StudyStore",
    "TrackingError",
    "clear_caches",
    "compare_runs_url",
    "count_studies",
    "create_study",
    "delete_study",
    "download_study_artifact",
    "end_trial",
    "flatten",
    "forget_stores",
    "get_study",
    "list_studies",
    "list_study_artifacts",
    "load_spec",
    "load_trials",
    "log_epoch",
    "log_history",
    "log_study_artifacts",
    "set_study_status",
    "set_study_tags",
    "snapshot_trials",
    "start_trial",
    "store_for",
    "study_run_url",
    "study_ui_url",
    "trials_from_json",
    "trials_to_json",
    "write_study_details",
]
