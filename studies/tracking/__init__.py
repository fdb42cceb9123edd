"""The records of every study, in MLflow: the only package of the project that imports
``mlflow``.

Use a store: ``store_for(tracking_uri)`` gives the ``StudyStore`` of a tracking URI (``store``
states the contract every backend keeps, ``mlflow_store`` implements it); the statuses are
``studies.status``'s. The package is split along the store's seams: ``connection`` (client,
tags, errors), ``studies`` (parent runs), ``trials`` (nested runs), ``epochs`` (metric rows in
bulk), ``reads`` (live trial reads: SQL tables straight, or a tracking server's bulk endpoint),
``snapshots`` (``trials.json``), ``artifacts``, ``links`` (MLflow UI addresses and the
shared view they open).

May import: mlflow and the vocabulary (``studies.errors``, ``results``, ``status``); no other
stage. The package exports the store, the links, the snapshot codec and its errors.
"""

from __future__ import annotations

from studies.errors import StudyNotFoundError, TrackingError
from studies.tracking.artifacts import ArtifactNotFoundError
from studies.tracking.connection import DEFAULT_EXPERIMENT
from studies.tracking.links import study_charts_url, study_run_url, study_ui_url
from studies.tracking.mlflow_store import MlflowStudyStore, forget_stores, store_for
from studies.tracking.snapshots import trials_from_json, trials_to_json
from studies.tracking.store import StudyStore
from studies.tracking.studies import flatten

__all__ = [
    "DEFAULT_EXPERIMENT",
    "ArtifactNotFoundError",
    "MlflowStudyStore",
    "StudyNotFoundError",
    "StudyStore",
    "TrackingError",
    "flatten",
    "forget_stores",
    "store_for",
    "study_charts_url",
    "study_run_url",
    "study_ui_url",
    "trials_from_json",
    "trials_to_json",
]
