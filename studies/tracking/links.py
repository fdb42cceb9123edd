"""Links into the MLflow UI (routes of MLflow 3.17's UI)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote

from studies.results import StudyRecord
from studies.tracking.connection import TAG_PARENT


def study_ui_url(record: StudyRecord, *, ui_base: str) -> str:
    """The MLflow UI's runs table of the experiment, filtered to this study's trial runs.

    MLflow 3.17: ``#/experiments/<id>/runs?searchFilter=...`` names the runs tab; without
    ``workflowType=machine_learning`` the UI's workflow switch (default "GenAI", remembered in
    the browser) opens the GenAI overview (traces, token usage) instead. The table shows the
    trials grouped under the study's run (MLflow fetches a child run's parent to nest it).
    """
    search = f"tags.`{TAG_PARENT}` = '{record.run_id}'"
    return (
        f"{ui_base.rstrip('/')}/#/experiments/{record.experiment_id}/runs"
        f"?searchFilter={quote(search, safe='')}&workflowType=machine_learning"
    )


def compare_runs_url(record: StudyRecord, trial_run_ids: Sequence[str], *, ui_base: str) -> str:
    """The MLflow UI's compare-runs page for these trial runs (MLflow 3.17
    ``getCompareRunPageRoute``: ``#/compare-runs?runs=[...]&experiments=[...]``, JSON lists)."""
    runs = json.dumps(list(trial_run_ids), separators=(",", ":"))
    experiments = json.dumps([record.experiment_id], separators=(",", ":"))
    return (
        f"{ui_base.rstrip('/')}/#/compare-runs"
        f"?runs={quote(runs, safe='')}&experiments={quote(experiments, safe='')}"
    )


def study_run_url(record: StudyRecord, *, ui_base: str) -> str:
    """The MLflow UI's page of the study's parent run (``#/experiments/<id>/runs/<run>``)."""
    return f"{ui_base.rstrip('/')}/#/experiments/{record.experiment_id}/runs/{record.run_id}"
