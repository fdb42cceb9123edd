"""The links a study answers with: its own endpoints, the MLflow UI views, its Ray job."""

from __future__ import annotations

from service.schemas import FigureFormat, FigureName, Links
from studies import tracking
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
        mlflow_run = tracking.study_run_url(record, ui_base=mlflow_ui)
        run_ids = [t.run_id for t in trials or [] if t.run_id]
        if run_ids:
            mlflow_compare = tracking.compare_runs_url(record, run_ids, ui_base=mlflow_ui)
        else:  # no trial run yet (or not read): the study's trial runs in the experiment
            mlflow_compare = tracking.study_ui_url(record, ui_base=mlflow_ui)
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
