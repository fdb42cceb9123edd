"""The links a study answers with: its own endpoints, the MLflow UI views, its Ray job."""

from __future__ import annotations

import json
from urllib.parse import quote

from service.schemas import FigureFormat, FigureName, Links
from studies.results import StudyRecord, TrialRecord


def study_links(
    record: StudyRecord,
    *,
    mlflow_ui: str | None,
    ray_dashboard: str | None,
    trials: list[TrialRecord] | None = None,
) -> Links:
    base = f"/studies/{record.study_id}"
    figures = {
        f"{name.value}.{fmt.value}": f"{base}/figures/{name.value}.{fmt.value}"
        for name in FigureName
        for fmt in FigureFormat
    }
    mlflow_run = mlflow_compare = None
    if mlflow_ui:
        ui = mlflow_ui.rstrip("/")
        experiment = record.experiment_id
        mlflow_run = f"{ui}/#/experiments/{experiment}/runs/{record.run_id}"
        run_ids = [t.run_id for t in trials or [] if t.run_id]
        if run_ids:
            runs = quote(json.dumps(run_ids, separators=(",", ":")))
            experiments = quote(json.dumps([experiment], separators=(",", ":")))
            mlflow_compare = f"{ui}/#/compare-runs?runs={runs}&experiments={experiments}"
        else:  # no trial yet: the experiment's runs of this study
            search = quote(f"tags.`robustness.study_id` = '{record.study_id}'")
            mlflow_compare = f"{ui}/#/experiments/{experiment}?searchFilter={search}"
    ray_job = f"{ray_dashboard.rstrip('/')}/#/jobs/{record.study_id}" if ray_dashboard else None
    return Links(
        self=base,
        summary=f"{base}/summary",
        trials=f"{base}/trials",
        figures=figures,
        cancel=f"{base}/cancel",
        mlflow_run=mlflow_run,
        mlflow_compare=mlflow_compare,
        ray_job=ray_job,
    )
