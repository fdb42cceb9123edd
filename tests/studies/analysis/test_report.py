"""The report end to end: real trials (``trainable.run_trial`` on digits, no Ray) recorded in a
real MLflow SQLite store, then ``finalize_study``, ``load_summary`` and ``robustness report``."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest

from studies import tracking
from studies.analysis import report
from studies.analysis.summary import StudySummary
from studies.cli import main
from studies.spec import StudySpec, TrialConfig
from studies.training.trial import run_trial

SPEC: dict[str, Any] = {
    "name": "digits-report",
    "dataset": "digits",
    "model": "mlp",
    "optimizers": ["radam", "adam"],
    "learning_rates": [0.003, 0.03],
    "seeds": [0, 1],
    "epochs": 2,
    "batch_size": 64,
}
ARTIFACTS = {
    "summary.json",
    "trials.csv",
    "figure6.png",
    "figure6.svg",
    "lr_sensitivity.png",
    "expected_max.png",
    "expected_max.svg",
}


def _record_trial(
    study_id: str, spec: StudySpec, cfg: TrialConfig, history: list[dict[str, Any]], uri: str
) -> None:
    """What the runner's Tune callback writes for one trial."""
    run_id = tracking.store_for(uri).start_trial(study_id, cfg.key, params=cfg.model_dump())
    for metrics in history:
        finite = {
            name: float(metrics[name])
            for name in ("train_loss", "test_loss", "test_acc", "lr")
            if math.isfinite(float(metrics[name]))
        }
        tracking.store_for(uri).log_epoch(run_id, int(metrics["epoch"]), finite)
    last = history[-1]
    tracking.store_for(uri).end_trial(
        run_id,
        "diverged" if last["diverged"] else "finished",
        node=last["node"],
        train_seconds=last["train_seconds"],
    )


@pytest.fixture(scope="module")
def trained() -> list[tuple[TrialConfig, list[dict[str, Any]]]]:
    spec = StudySpec.parse(SPEC)
    return [(cfg, run_trial(spec, cfg, threads=1)) for cfg in spec.trial_configs()]


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(scope="module")
def finished_study(
    uri: str,
    trained: list[tuple[TrialConfig, list[dict[str, Any]]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, Path, StudySummary]:
    """A study run to its end, finalised as the runner does (before marking it succeeded)."""
    spec = StudySpec.parse(SPEC)
    record = tracking.store_for(uri).create_study(spec.model_dump(mode="json"))
    tracking.store_for(uri).set_study_status(record.study_id, "running")
    for cfg, history in trained:
        _record_trial(record.study_id, spec, cfg, history, uri)
    out = tmp_path_factory.mktemp("report")
    summary = report.finalize_study(record.study_id, tracking_uri=uri, out_dir=out)
    tracking.store_for(uri).set_study_status(record.study_id, "succeeded")
    return record.study_id, out, summary


def test_finalize_writes_the_files(finished_study: tuple[str, Path, StudySummary]) -> None:
    study_id, out, summary = finished_study
    assert {p.name for p in out.iterdir()} == ARTIFACTS
    assert StudySummary.from_json((out / "summary.json").read_text()) == summary
    assert summary.study_id == study_id and summary.name == "digits-report"
    assert summary.trials_total == 8 and summary.trials_done == 8 and not summary.partial
    assert [o.optimizer for o in summary.optimizers] == ["radam", "adam"]
    assert all(c.n_seeds == 2 and len(c.curve_mean_pct) == 2 for c in summary.cells)


def test_trials_csv_matches_the_records(
    uri: str, finished_study: tuple[str, Path, StudySummary]
) -> None:
    study_id, out, _ = finished_study
    with (out / "trials.csv").open() as handle:
        rows = {row["trial_id"]: row for row in csv.DictReader(handle)}
    records = tracking.store_for(uri).load_trials(study_id)
    assert set(rows) == {t.trial_id for t in records}
    for t in records:
        assert t.final_acc is not None
        assert float(rows[t.trial_id]["final_acc_pct"]) == pytest.approx(
            100 * t.final_acc, abs=1e-3
        )
        assert rows[t.trial_id]["status"] == t.status
        assert int(rows[t.trial_id]["epochs_done"]) == 2


def test_artifacts_are_logged_on_the_parent_run(
    uri: str, finished_study: tuple[str, Path, StudySummary]
) -> None:
    study_id, _, summary = finished_study
    record = tracking.store_for(uri).get_study(study_id)
    client = mlflow.MlflowClient(tracking_uri=uri)
    names = {Path(a.path).name for a in _all_artifacts(client, record.run_id)}
    assert names >= ARTIFACTS
    summary_file = next(
        a.path for a in _all_artifacts(client, record.run_id) if a.path.endswith("summary.json")
    )
    local = client.download_artifacts(record.run_id, summary_file)
    assert StudySummary.from_json(Path(local).read_text()) == summary


def _all_artifacts(client: mlflow.MlflowClient, run_id: str, path: str | None = None) -> list[Any]:
    found: list[Any] = []
    for item in client.list_artifacts(run_id, path):
        found += _all_artifacts(client, run_id, item.path) if item.is_dir else [item]
    return found


def test_load_summary_of_a_finished_study_is_cached(
    uri: str, finished_study: tuple[str, Path, StudySummary], monkeypatch: pytest.MonkeyPatch
) -> None:
    study_id, out, final = finished_study
    first = report.load_summary(study_id, tracking_uri=uri, out_dir=out)
    assert first.status == "succeeded"
    assert first.model_copy(update={"status": final.status}) == final
    reads: list[str] = []
    real = tracking.MlflowStudyStore.load_trials

    def counting_load_trials(*args: Any, **kwargs: Any) -> Any:
        reads.append("read")
        return real(*args, **kwargs)

    monkeypatch.setattr(tracking.MlflowStudyStore, "load_trials", counting_load_trials)
    assert report.load_summary(study_id, tracking_uri=uri, out_dir=out) is first
    report._cache.clear()  # another process: the summary.json artifact answers
    from_disk = report.load_summary(study_id, tracking_uri=uri, out_dir=out)
    assert from_disk == first and reads == []
    report.load_summary(study_id, tracking_uri=uri, out_dir=out, refresh=True)
    assert reads == ["read"]


def test_running_study_is_partial_and_never_cached(
    uri: str, trained: list[tuple[TrialConfig, list[dict[str, Any]]]], tmp_path: Path
) -> None:
    spec = StudySpec.parse(SPEC | {"name": "digits-running"})
    record = tracking.store_for(uri).create_study(spec.model_dump(mode="json"))
    tracking.store_for(uri).set_study_status(record.study_id, "running")
    for cfg, history in trained[:3]:
        _record_trial(record.study_id, spec, cfg, history, uri)
    running_cfg, running_history = trained[3]
    run_id = tracking.store_for(uri).start_trial(
        record.study_id, running_cfg.key, params=running_cfg.model_dump()
    )
    tracking.store_for(uri).log_epoch(run_id, 1, {"test_acc": running_history[0]["test_acc"]})

    summary = report.load_summary(record.study_id, tracking_uri=uri, out_dir=tmp_path)
    assert summary.partial and summary.trials_done == 3 and summary.trials_total == 8
    assert summary.verdict.startswith("So far (3 of 8 trials done)")
    assert sum(c.n_pending for c in summary.cells) == 1
    tracking.store_for(uri).end_trial(run_id, "finished")
    assert report.load_summary(record.study_id, tracking_uri=uri, out_dir=tmp_path).trials_done == 4


def test_cli_report_table_json_and_csv(
    uri: str,
    finished_study: tuple[str, Path, StudySummary],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    study_id, _, final = finished_study
    base = ["report", study_id, "--tracking-uri", uri, "--out", str(tmp_path)]
    assert main(base) == 0
    table = capsys.readouterr().out
    assert table.startswith(f"Study {study_id} (digits-report): 8 of 8 trials done (complete)")
    assert "lr=0.003" in table and "lr=0.03" in table and "Verdict:" in table
    assert {p.name for p in tmp_path.iterdir()} == ARTIFACTS

    assert main([*base, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert StudySummary.from_dict(data).cells == final.cells
    assert data["status"] == "succeeded"
    for optimizer in data["optimizers"]:  # the expected best over k = 1..N configurations
        budget = optimizer["expected_max_pct"]
        assert len(budget) == optimizer["n_cells"] == 2
        assert budget[-1] == pytest.approx(optimizer["best_acc_pct"])
    assert "E[best] k=1/N" in table
    assert data["comparisons"][0]["method"] == "within-cell permutation test of seeds"

    assert main([*base, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("optimizer,lr,warmup") and len(lines) == 1 + 4


def test_cli_report_unknown_study_is_an_error(
    uri: str, finished_study: tuple[str, Path, StudySummary], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "no-such-study", "--tracking-uri", uri]) == 2
    assert "no-such-study" in capsys.readouterr().err


@pytest.mark.slow
def test_robustness_report_as_a_process(
    uri: str, finished_study: tuple[str, Path, StudySummary], tmp_path: Path
) -> None:
    study_id, _, _ = finished_study
    done = subprocess.run(
        [sys.executable, "-m", "studies", "report", study_id, "--out", str(tmp_path)],
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Verdict:" in done.stdout and (tmp_path / "figure6.png").stat().st_size > 0


def test_a_trial_diverged_before_its_first_evaluation_counts_at_chance(
    uri: str, trained: list[tuple[TrialConfig, list[dict[str, Any]]]]
) -> None:
    # Digits has ten classes: the runner logs no test_acc for a diverged first epoch (NaN).
    spec = StudySpec.parse(SPEC | {"name": "digits-diverged"})
    record = tracking.store_for(uri).create_study(spec.model_dump(mode="json"))
    cfg = TrialConfig(optimizer="adam", lr=30.0, seed=0)
    run_id = tracking.store_for(uri).start_trial(record.study_id, cfg.key, params=cfg.model_dump())
    tracking.store_for(uri).log_epoch(run_id, 1, {"train_loss": 1e5})
    tracking.store_for(uri).end_trial(run_id, "diverged")
    summary = report.load_summary(record.study_id, tracking_uri=uri)
    (cell,) = summary.cells
    assert cell.n_diverged == 1 and cell.final_acc_mean_pct == pytest.approx(10.0)
