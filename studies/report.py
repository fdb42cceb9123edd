"""A study's report: read its trials out of MLflow, summarise, write and log the artifacts.

``finalize_study`` is what the runner calls when a study ends: it writes ``summary.json``,
``trials.csv`` and the figures to ``out_dir`` (default ``<home>/reports/<study_id>``) and logs
them as artifacts of the study's parent run, so the MLflow UI shows them beside the runs.

``load_summary`` is what the service and ``robustness report`` call: a finished study's summary
never changes, so it is cached in memory (keyed by tracking URI and study id) and, across
processes, reused from the ``summary.json`` on disk when that file is complete for the study.
A running study is always summarised afresh (it is partial, and says so).
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Sequence
from pathlib import Path

from studies import paths
from studies.figures import write_figures
from studies.results import StudyRecord, TrialRecord
from studies.summary import StudySummary, format_cells_csv, format_table, summarize

__all__ = [
    "build_report",
    "finalize_study",
    "format_cells_csv",
    "format_table",
    "load_summary",
    "report_dir",
    "write_trials_csv",
]

#: Study statuses after which nothing changes any more.
FINISHED_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

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
)

_cache: dict[tuple[str, str], StudySummary] = {}
_cache_lock = threading.Lock()


def report_dir(study_id: str) -> Path:
    return paths.home() / "reports" / study_id


def _trials_total(record: StudyRecord) -> int | None:
    if record.num_trials:
        return record.num_trials
    try:  # the spec knows its grid size; tolerate a spec module that cannot read it
        from studies.spec import StudySpec

        return StudySpec.parse(record.spec, max_trials=10**9).num_trials
    except Exception:
        return None


def _read_trials(study_id: str, *, tracking_uri: str) -> list[TrialRecord]:
    from studies import tracking

    return list(tracking.load_trials(study_id, tracking_uri=tracking_uri))


def _summarize_record(record: StudyRecord, trials: Sequence[TrialRecord]) -> StudySummary:
    return summarize(
        trials,
        study_id=record.study_id,
        name=record.name,
        status=record.status,
        trials_total=_trials_total(record),
    )


def load_summary(
    study_id: str, *, tracking_uri: str, out_dir: Path | None = None, refresh: bool = False
) -> StudySummary:
    """The study's summary; finished studies come from the cache after the first read.

    Raises ``StudyNotFoundError`` (from tracking) for an unknown id.
    """
    from studies import tracking

    record = tracking.get_study(study_id, tracking_uri=tracking_uri)
    finished = record.status in FINISHED_STATUSES
    key = (tracking_uri, study_id)
    if finished and not refresh:
        with _cache_lock:
            cached = _cache.get(key)
        if cached is not None and cached.status == record.status:
            return cached
        on_disk = _read_cached_file((out_dir or report_dir(study_id)) / "summary.json", record)
        if on_disk is not None:
            with _cache_lock:
                _cache[key] = on_disk
            return on_disk
    summary = _summarize_record(record, _read_trials(study_id, tracking_uri=tracking_uri))
    if finished:
        with _cache_lock:
            _cache[key] = summary
    return summary


def _read_cached_file(path: Path, record: StudyRecord) -> StudySummary | None:
    """A summary.json that holds this finished study's final numbers, else None.

    ``finalize_study`` runs before the runner marks the study succeeded, so the file may say
    ``running``: it is still final when every trial was done (not partial); its status is
    brought up to date. A partial or foreign file is stale.
    """
    try:
        summary = StudySummary.from_json(path.read_text())
    except (OSError, ValueError):
        return None
    if summary.study_id != record.study_id:
        return None
    if summary.status != record.status and summary.partial:
        return None
    return summary.model_copy(update={"status": record.status})


def write_trials_csv(trials: Sequence[TrialRecord], path: Path) -> Path:
    """One row per trial; accuracies in percent (the records hold fractions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRIALS_CSV_COLUMNS)
        for t in trials:
            final, best = t.final_acc, t.best_acc
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
                    "" if final is None else f"{100.0 * final:.4f}",
                    "" if best is None else f"{100.0 * best:.4f}",
                    "" if t.train_seconds is None else f"{t.train_seconds:.3f}",
                    t.node or "",
                    t.run_id or "",
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

    Returns the summary and the files written; with ``log_artifacts`` also logs them as
    artifacts of the study's parent run.
    """
    from studies import tracking

    record = tracking.get_study(study_id, tracking_uri=tracking_uri)
    trials = _read_trials(study_id, tracking_uri=tracking_uri)
    summary = _summarize_record(record, trials)
    target = out_dir or report_dir(study_id)
    target.mkdir(parents=True, exist_ok=True)
    summary_path = target / "summary.json"
    summary_path.write_text(summary.to_json())
    written = [summary_path, write_trials_csv(trials, target / "trials.csv")]
    written += write_figures(summary, target)
    if log_artifacts:
        tracking.log_study_artifacts(study_id, written, tracking_uri=tracking_uri)
    if record.status in FINISHED_STATUSES:
        with _cache_lock:
            _cache[(tracking_uri, study_id)] = summary
    return summary, written


def finalize_study(
    study_id: str, *, tracking_uri: str, out_dir: Path | None = None
) -> StudySummary:
    """What the runner calls when a study ends: summary, trials.csv and figures, written to
    ``out_dir`` and logged as artifacts of the study's parent run."""
    summary, _ = build_report(
        study_id, tracking_uri=tracking_uri, out_dir=out_dir, log_artifacts=True
    )
    return summary
