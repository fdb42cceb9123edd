"""The links a study answers with: its own endpoints, the MLflow UI views, its Ray job."""

from __future__ import annotations

from service.schemas import FigureFormat, Links
from service.views import study_figures
from studies import tracking
from studies.results import StudyRecord


def study_links(
    record: StudyRecord,
    *,
    mlflow_ui: str | None,
    ray_dashboard: str | None,
    has_results: bool = True,
) -> Links:
    """``figures``: the figures the study has by its design (``views.study_figures``: a
    sampled study's tuning_curve and lr_samples, a grid's others, the warmup figure only where
    it varies the warmup), none while ``has_results`` is false (no
    trial has finished yet, so there is nothing to draw): each listed URL answers 200."""
    base = f"/studies/{record.study_id}"
    figures = {
        f"{name.value}.{fmt.value}": f"{base}/figures/{name.value}.{fmt.value}"
        for name in (study_figures(record) if has_results else [])
        for fmt in FigureFormat
    }
    mlflow_run = mlflow_compare = mlflow_trials = None
    if mlflow_ui:  # what each opens: studies.tracking.links
        mlflow_run = tracking.study_run_url(record, ui_base=mlflow_ui)
        mlflow_compare = tracking.study_charts_url(record, ui_base=mlflow_ui)
        mlflow_trials = tracking.study_ui_url(record, ui_base=mlflow_ui)
    ray_job = f"{ray_dashboard.rstrip('/')}/#/jobs/{record.study_id}" if ray_dashboard else None
    return Links(
        self=base,
        summary=f"{base}/summary",
        trials=f"{base}/trials",
        figures=figures,
        cancel=f"{base}/cancel",
        mlflow_run=mlflow_run,
        mlflow_compare=mlflow_compare,
        mlflow_trials=mlflow_trials,
        ray_job=ray_job,
    )
