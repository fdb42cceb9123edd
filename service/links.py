"""The links a study answers with: its own endpoints, the MLflow UI views, its Ray job."""

from __future__ import annotations

from service.schemas import FigureFormat, FigureName, Links
from studies import tracking
from studies.analysis.figures import figure_names_for_spec
from studies.errors import SpecError
from studies.results import StudyRecord
from studies.spec import StudySpec


def _figure_names(record: StudyRecord) -> list[str]:
    """The figures this study has (a grid's or a sampled study's; the warmup figure only
    when the grid varies the warmup); every name when its spec does not parse."""
    try:
        return figure_names_for_spec(StudySpec.from_json_cached(record.spec))
    except SpecError:
        return [name.value for name in FigureName]


def study_links(record: StudyRecord, *, mlflow_ui: str | None, ray_dashboard: str | None) -> Links:
    base = f"/studies/{record.study_id}"
    figures = {
        f"{name}.{fmt.value}": f"{base}/figures/{name}.{fmt.value}"
        for name in _figure_names(record)
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
