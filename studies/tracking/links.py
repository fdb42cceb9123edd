"""Links into the MLflow UI (MLflow 3.17's routes and the view state its UI reads), and the
view a study's links open.

What a researcher lands on, and what in MLflow 3.17.2's UI makes it so:

* The study's trials, as a table or as charts: the experiment page with
  ``viewStateShareKey=<the study's parent run id>``. The UI looks up the experiment tag
  ``mlflow.sharedViewState.<key>`` (``useSharedExperimentViewState``) and applies it as a shared
  view: its search facets and its UI state. ``study_view`` writes it when the study's details
  are written: the trials only (``tags.mlflow.parentRunId``), sorted by the study's metric, best
  first, with the study's axes and metrics as columns, every run shown in the charts (not the
  first 10), and a parallel-coordinates chart of those axes against the metric first. Sorted by
  a metric, the table lists the trials flat: the UI nests child runs under their parent (and
  fetches the parent) only when sorted by date or unsorted and unfiltered, which showed a study
  as its one parent run, folded. The UI ignores a shared view when the URL carries search
  facets too (``searchFilter``, ``orderByKey``, ...), so the links carry only the key and the
  mode (``compareRunsMode`` TABLE or CHART).
* MLflow's own compare page (``#/compare-runs``) is not linked: its parallel-coordinates plot
  takes the first metric the server lists for the first run (``sharedMetricKeys[0]``: lr or
  train_loss, by the store's row order) and no URL or tag changes that.
* ``workflowType=machine_learning`` on every link: the UI's workflow switch defaults to
  "GenAI" (remembered per browser), which shows a run under "Evaluation runs" and an
  experiment as its GenAI overview. The URL's value wins over the remembered one.

A study created before ``study_view`` existed has no view tag: its table and charts links
open the experiment with MLflow's notice that the share key does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from studies.results import StudyRecord
from studies.tracking.connection import TAG_PARENT

VIEW_TAG_PREFIX = "mlflow.sharedViewState."  # the UI's EXPERIMENT_PAGE_VIEW_STATE_SHARE_TAG_PREFIX
_ML_LAYOUT = "workflowType=machine_learning"
_SECTION = "robustness-study-metrics"  # the chart section the study's own charts sit in
_SYSTEM_SECTION = "robustness-system-metrics"
_OTHER_METRICS = ("test_loss", "train_loss")


def view_tag_key(run_id: str) -> str:
    """The experiment tag that holds the view of the study whose parent run is ``run_id``."""
    return f"{VIEW_TAG_PREFIX}{run_id}"


def _axes(spec: Mapping[str, Any]) -> list[str]:
    """The trial params the study varies (the trial runs' param names), in the grid's order:
    optimizer and lr always; warmup, its length and the seed when the spec has more than one."""
    warmup = spec.get("warmup")
    warmup = warmup if isinstance(warmup, dict) else {}
    kinds = [kind for kind in warmup.get("kinds") or [] if kind != "none"]
    steps = warmup.get("steps") or []
    axes = ["optimizer", "lr"]
    if kinds:  # crossed with some optimizers; the others run with none: the axis varies
        axes.append("warmup")
    if len(steps) > 1:
        axes.append("warmup_steps")
    if len(spec.get("seeds") or []) > 1:
        axes.append("seed")
    return axes


def study_view(run_id: str, spec: Mapping[str, Any]) -> tuple[str, str]:
    """The experiment tag (key, JSON value) of the view a study's table and charts links open:
    MLflow 3.17's shared experiment view state (search facets and UI state, plain JSON)."""
    search = spec.get("search") or {}
    metric = str(search.get("metric") or "test_acc") if isinstance(search, dict) else "test_acc"
    measured = spec.get("metric")  # the workload's metric, written where the study entered
    lower_first = False
    if isinstance(measured, dict) and measured.get("name") not in (None, "test_acc"):
        metric, lower_first = str(measured["name"]), measured.get("direction") == "lower"
    axes = _axes(spec)
    metrics = [metric, *(m for m in _OTHER_METRICS if m != metric)]
    state: dict[str, Any] = {
        # search facets
        "searchFilter": f"tags.`{TAG_PARENT}` = '{run_id}'",
        "orderByKey": f"metrics.`{metric}`",
        "orderByAsc": lower_first,  # best first: test accuracy's highest, a loss's lowest
        # UI state
        "selectedColumns": [f"params.`{a}`" for a in axes] + [f"metrics.`{m}`" for m in metrics],
        "runsHiddenMode": "SHOW_ALL",  # the charts' default shows only the first 10 runs
        "compareRunCharts": [
            {
                "uuid": "robustness-parallel",
                "type": "PARALLEL",
                "metricSectionId": _SECTION,
                "deleted": False,
                "isGenerated": False,
                "selectedParams": axes,
                "selectedMetrics": [metric],
                "showAllRuns": True,
            },
            {
                "uuid": f"robustness-{metric}",
                "type": "LINE",
                "metricSectionId": _SECTION,
                "deleted": False,
                "isGenerated": False,
                "metricKey": metric,
                "selectedMetricKeys": [metric],
                "xAxisKey": "step",
                "scaleType": "linear",
                "lineSmoothness": 0,
            },
        ],
        # isReordered: the UI appends its generated charts (the other metrics) after ours
        "compareRunSections": [
            {
                "uuid": _SECTION,
                "name": "Model metrics",
                "display": True,
                "isReordered": True,
                "deleted": False,
                "isGenerated": True,
            },
            {
                "uuid": _SYSTEM_SECTION,
                "name": "System metrics",
                "display": True,
                "isReordered": False,
                "deleted": False,
                "isGenerated": True,
            },
        ],
        "isAccordionReordered": False,
    }
    return view_tag_key(run_id), json.dumps(state, separators=(",", ":"))


def study_ui_url(
    record: StudyRecord, *, ui_base: str, mode: Literal["TABLE", "CHART"] = "TABLE"
) -> str:
    """The study's trials in the experiment page (``study_view``): a flat table sorted by the
    study's metric (``TABLE``), or the charts, parallel coordinates first (``CHART``)."""
    return (
        f"{ui_base.rstrip('/')}/#/experiments/{record.experiment_id}/runs"
        f"?viewStateShareKey={record.run_id}&compareRunsMode={mode}&{_ML_LAYOUT}"
    )


def study_charts_url(record: StudyRecord, *, ui_base: str) -> str:
    """The study's trials compared in charts: its axes against its metric (parallel
    coordinates), the metric per epoch, then the other metrics."""
    return study_ui_url(record, ui_base=ui_base, mode="CHART")


def study_run_url(record: StudyRecord, *, ui_base: str) -> str:
    """The page of the study's parent run (``#/experiments/<id>/runs/<run>``), in the UI's
    model-training layout."""
    return (
        f"{ui_base.rstrip('/')}/#/experiments/{record.experiment_id}/runs/{record.run_id}"
        f"?{_ML_LAYOUT}"
    )
