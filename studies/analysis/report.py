"""A study's report: read its trials out of MLflow, summarise, write and log the artifacts.

``finalize_study`` is what the runner calls when a study ends: it snapshots the trials
(tracking's ``trials.json``), writes ``summary.json``, ``trials.csv`` and the figures to
``out_dir`` (default ``<home>/reports/<study_id>``) and logs them as artifacts of the study's
parent run, so the MLflow UI shows them beside the runs.

``load_summary`` is what the service calls: a finished study's summary never changes, so it is
kept in this process (keyed by tracking URI, study id, status and last update) and, across
processes, read back from the ``summary.json`` artifact when that holds the final numbers. A
running study is summarised afresh each time (it is partial, and says how many trials are in).
Evidence: ``bench/summary.py`` (1000 trials x 164 epochs).
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Sequence
from pathlib import Path

from studies import paths, tracking
from studies.analysis.figures import write_figures
from studies.analysis.labels import is_accuracy
from studies.analysis.sampled import summarize_sampled
from studies.analysis.summarize import summarize
from studies.analysis.summary import StudySummary
from studies.analysis.tables import format_cells_csv, format_table
from studies.errors import RobustnessError, SpecError
from studies.metrics import ACCURACY, Metric
from studies.results import StudyRecord, TrialRecord
from studies.spec import StudySpec
from studies.status import TERMINAL_STUDY
from studies.tracking import StudyStore

__all__ = [
    "build_report",
    "finalize_study",
    "format_cells_csv",
    "format_table",
    "load_summary",
    "report_dir",
    "write_trials_csv",
]

#: Study statuses after which nothing changes any more (the old name of TERMINAL_STUDY).
FINISHED_STATUSES = TERMINAL_STUDY

TRIALS_CSV_COLUMNS: tuple[str, ...] = (
    "trial_id",
    "optimizer",
    "lr",
    "warmup",
    "warmup_steps",
    "seed",
    "status",
    "epochs_done",
    "final_acc_pct",
    "best_acc_pct",
    "train_seconds",
    "node",
    "run_id",
    "repeat",  # a sampled search's repeat and sample index; empty in a grid
    "sample",
)

#: Classes per dataset: a trial that diverged before its first evaluation counts at chance.
DATASET_CLASSES: dict[str, int] = {"cifar10": 10, "fashion_mnist": 10, "digits": 10}

SUMMARY_ARTIFACT = "summary.json"
TRIALS_CSV = "trials.csv"

# (tracking URI, study id) -> ((status, updated_at), summary), for finished studies only.
_cache: dict[tuple[str, str], tuple[tuple[str, str], StudySummary]] = {}
_cache_lock = threading.Lock()


def report_dir(study_id: str) -> Path:
    return paths.home() / "reports" / study_id


def _trials_total(record: StudyRecord) -> int | None:
    if record.num_trials:
        return record.num_trials
    try:  # the spec knows its grid size (the record may not, e.g. a study created by hand)
        return StudySpec.parse(record.spec).num_trials
    except SpecError:
        return None


def study_metric(record: StudyRecord) -> Metric:
    """What the study measured: its spec's ``metric`` (written where it entered), accuracy for
    a study recorded before workloads had their own."""
    raw = record.spec.get("metric")
    if isinstance(raw, dict):
        try:
            return Metric.model_validate(raw)
        except ValueError:
            pass
    return ACCURACY


def _failed_level(record: StudyRecord, metric: Metric) -> float:
    """What a counted run with no finite value counts as, in display units: chance accuracy
    for the built-in datasets (percent), else the metric's own ``failed_value``."""
    classes = DATASET_CLASSES.get(str(record.spec.get("dataset", "")))
    if metric == ACCURACY and classes:
        return 100.0 / classes
    return metric.failed_value * metric.display_scale


def _summarize_record(record: StudyRecord, trials: Sequence[TrialRecord]) -> StudySummary:
    metric = study_metric(record)
    summary = summarize(
        trials,
        study_id=record.study_id,
        name=record.name,
        status=record.status,
        trials_total=_trials_total(record),
        no_accuracy_pct=_failed_level(record, metric),
        metric=metric,
    )
    search = record.spec.get("search")
    if not isinstance(search, dict) or search.get("kind", "grid") == "grid":
        return summary  # a grid study's summary is whole: its spec is not parsed again here
    try:
        spec = StudySpec.from_json_cached(record.spec)
    except SpecError:
        return summary
    if not spec.sampled:
        return summary
    # A sampled study: per optimizer its searches (studies.analysis.sampled), their verdict
    # in place of the grid's (sampled points share no cells), no warmup x lr tables.
    sampled = summarize_sampled(
        trials,
        kind=spec.search.kind,
        num_samples=spec.search.num_samples,
        repeats=spec.search.repeats,
        no_accuracy_pct=_failed_level(record, metric),
        metric=metric.name,
        display_scale=metric.display_scale,
        higher_is_better=metric.higher_is_better,
        metric_label=metric.label,
        unit=metric.shown_unit,
        partial=summary.partial,
    )
    return summary.model_copy(
        update={
            "search": spec.search.kind,
            "sampled": sampled,
            "comparisons": [],
            "verdict": sampled.verdict,
            "warmup_tables": [],
        }
    )


def load_summary(
    study_id: str, *, tracking_uri: str, out_dir: Path | None = None, refresh: bool = False
) -> StudySummary:
    """The study's summary, partial while it runs; a finished study's comes from a cache.

    Finished (succeeded/failed/cancelled): this process's cache, else the ``summary.json``
    artifact ``finalize_study`` logged (when it holds the final numbers), else computed from
    the trials (which tracking reads from its one-artifact snapshot). ``out_dir`` is accepted
    for symmetry with ``build_report`` and unused. Raises ``StudyNotFoundError`` for an unknown
    id, ``TrackingError`` when MLflow cannot be read.
    """
    del out_dir
    store = tracking.store_for(tracking_uri)
    record = store.get_study(study_id)
    finished = record.status in FINISHED_STATUSES
    key = (tracking_uri, study_id)
    # The study's status and last update: a resumed and re-finished study is a new version.
    version = (record.status, record.updated_at.isoformat() if record.updated_at else "")
    if finished and not refresh:
        with _cache_lock:
            cached = _cache.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        logged = _logged_summary(record, store)
        if logged is not None:
            with _cache_lock:
                _cache[key] = (version, logged)
            return logged
    trials = store.load_trials(study_id)
    summary = _summarize_record(record, trials)
    if finished:
        with _cache_lock:
            _cache[key] = (version, summary)
    return summary


def _logged_summary(record: StudyRecord, store: StudyStore) -> StudySummary | None:
    """The ``summary.json`` artifact when it holds this finished study's final numbers.

    ``finalize_study`` runs before the runner marks the study succeeded, so the file says
    ``running``: it is still final when every trial was done (not partial), and its status is
    brought up to date. A partial file of another status, or none at all, is no answer.
    """
    try:
        data = store.download_artifact(record.study_id, SUMMARY_ARTIFACT)
        summary = StudySummary.from_json(data)
    except (RobustnessError, ValueError):  # absent, unreadable or from an older format
        return None
    if summary.study_id != record.study_id:
        return None
    if summary.status != record.status and summary.partial:
        return None
    return summary.model_copy(update={"status": record.status})


def write_trials_csv(trials: Sequence[TrialRecord], path: Path, metric: Metric = ACCURACY) -> Path:
    """One row per trial; accuracies in percent (the records hold fractions). Another metric:
    its own columns (``final_val_loss``, ``best_val_loss``), in its display units, the best in
    its direction."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(TRIALS_CSV_COLUMNS)
    if not is_accuracy(metric):
        columns[columns.index("final_acc_pct")] = f"final_{metric.name}"
        columns[columns.index("best_acc_pct")] = f"best_{metric.name}"
    scale = metric.display_scale
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for t in trials:
            final = t.final(metric.name)
            # accuracy as it always was (Python's max); another metric: its best finite value
            best = (
                t.best_acc if is_accuracy(metric) else metric.best(t.history.get(metric.name, []))
            )
            writer.writerow(
                [
                    t.trial_id,
                    t.optimizer,
                    repr(t.lr),
                    t.warmup,
                    t.warmup_steps,
                    t.seed,
                    t.status,
                    t.epochs_done,
                    "" if final is None else f"{scale * final:.4f}",
                    "" if best is None else f"{scale * best:.4f}",
                    "" if t.train_seconds is None else f"{t.train_seconds:.3f}",
                    t.node or "",
                    t.run_id or "",
                    "" if t.repeat is None else t.repeat,
                    "" if t.sample is None else t.sample,
                ]
            )
    return path


def build_report(
    study_id: str,
    *,
    tracking_uri: str,
    out_dir: Path | None = None,
    log_artifacts: bool = False,
) -> tuple[StudySummary, list[Path]]:
    """Summarise the study afresh and write summary.json, trials.csv and the figures.

    Returns the summary and the files written. With ``log_artifacts`` (what ``finalize_study``
    does) the trials are first snapshotted (tracking's ``trials.json``) and the files are
    logged as artifacts of the study's parent run.
    """
    store = tracking.store_for(tracking_uri)
    record = store.get_study(study_id)
    trials = store.snapshot_trials(study_id) if log_artifacts else store.load_trials(study_id)
    summary = _summarize_record(record, trials)
    target = out_dir or report_dir(study_id)
    target.mkdir(parents=True, exist_ok=True)
    summary_path = target / SUMMARY_ARTIFACT
    summary_path.write_text(summary.to_json())
    written = [summary_path, write_trials_csv(trials, target / TRIALS_CSV, summary.metric)]
    written += write_figures(summary, target)
    if log_artifacts:
        store.log_artifacts(study_id, written)
    return summary, written


def finalize_study(
    study_id: str, *, tracking_uri: str, out_dir: Path | None = None
) -> StudySummary:
    """What the runner calls when a study ends: snapshot the trials, then the summary,
    trials.csv and figures, written to ``out_dir`` (default ``<home>/reports/<study_id>``) and
    logged as artifacts of the study's parent run."""
    summary, _ = build_report(
        study_id, tracking_uri=tracking_uri, out_dir=out_dir, log_artifacts=True
    )
    with _cache_lock:  # the study's status changes next: load_summary re-validates then
        _cache.pop((tracking_uri, study_id), None)
    return summary
