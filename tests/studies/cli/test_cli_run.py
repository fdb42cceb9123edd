"""``robustness run`` and ``robustness presets`` as a user runs them.

The end-to-end test runs the real command in a subprocess on the embedded default (it starts
and stops its own local Ray; MLflow in SQLite under a tmp ROBUSTNESS_HOME) and reads the
records back from MLflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studies import tracking
from studies.cli import main
from studies.presets import PRESETS
from studies.spec import StudySpec


def test_presets_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name, spec in PRESETS.items():
        assert name in out and f"{spec.num_trials} trials" in out


def test_a_printed_preset_is_a_valid_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "figure7"]) == 0
    assert StudySpec.parse(capsys.readouterr().out) == PRESETS["figure7"]


def test_dry_run_applies_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["run", "figure6-quick", "--dry-run", "--set", "epochs=1", "--set", "learning_rates=[0.1]"]
    )
    assert code == 0
    captured = capsys.readouterr()
    spec = StudySpec.parse(captured.out)
    assert spec.epochs == 1 and spec.learning_rates == [0.1]
    assert "9 trials" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no-such-preset"], "neither a preset"),
        (["run", "figure6-quick", "--set", "epochs=0"], "epochs"),
        (["run", "figure6-quick", "--set", "epochs"], "KEY=VALUE"),
        (["run", "--resume"], "--study-id"),
        (["run", "figure6", "--study-id", "abc"], "--study-id"),
        (["run", "figure6", "--max-trials", "10", "--dry-run"], "limit of 10"),
    ],
)
def test_bad_input_exits_2_with_the_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_run_a_digits_spec_file_end_to_end(tmp_path: Path) -> None:
    spec = {
        "name": "cli-digits",
        "dataset": "digits",
        "model": "mlp",
        "optimizers": ["radam", "sgd"],
        "learning_rates": [0.01, 0.1],
        "epochs": 3,
        "batch_size": 64,
    }
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    home = tmp_path / "home"
    env = {
        **os.environ,
        "ROBUSTNESS_HOME": str(home),
        "RAY_DEDUP_LOGS": "0",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)  # the embedded default, never someone else's cluster
    done = subprocess.run(
        [sys.executable, "-m", "studies", "run", str(spec_file), "--set", "epochs=2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "succeeded"
    assert "[4/4]" in done.stderr  # the progress line reached the end
    # the robustness table closes the run, as `robustness report` prints it
    assert "4 of 4 trials done (complete)" in done.stdout
    assert "Final test accuracy" in done.stdout
    uri = f"sqlite:///{home / 'mlflow.db'}"
    assert outcome["tracking_uri"] == uri

    record = tracking.store_for(uri).get_study(outcome["study_id"])
    assert record.status == "succeeded" and record.run_id == outcome["run_id"]
    trials = tracking.store_for(uri).load_trials(outcome["study_id"])
    assert sorted(t.trial_id for t in trials) == sorted(
        c.key for c in StudySpec.parse(spec).trial_configs()
    )
    assert len({t.run_id for t in trials}) == 4
    for trial in trials:
        assert trial.status == "finished"
        for metric in ("train_loss", "test_loss", "test_acc", "lr"):
            assert len(trial.history[metric]) == 2, (trial.trial_id, metric)  # --set epochs=2
        assert trial.node


@pytest.fixture
def no_fashion_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home where Fashion-MNIST is nowhere to be found, and no download to try."""
    home = tmp_path / "home"
    monkeypatch.setenv("ROBUSTNESS_HOME", str(home))
    monkeypatch.setenv("ROBUSTNESS_DEBIAN_FASHION_MNIST", str(tmp_path / "not-installed"))
    monkeypatch.setenv("ROBUSTNESS_DOWNLOAD", "0")
    for name in ("ROBUSTNESS_DATA_DIR", "MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_run_refuses_an_absent_dataset_before_ray(
    no_fashion_mnist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from studies.workloads import sources

    assert main(["run", "figure6-quick"]) == 2

    err = capsys.readouterr().err
    assert sources.locate("fashion_mnist").hint in err
    assert not (no_fashion_mnist / "mlflow.db").exists()  # nothing recorded
    assert not (no_fashion_mnist / "ray_results").exists()  # Ray never started


def test_driver_fails_the_study_once_when_its_dataset_is_absent(
    no_fashion_mnist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cluster mode: the service could not see the workers' data, so the study's driver
    (``robustness run --study-id``, the Ray Job) checks before any trial starts."""
    from studies.workloads import sources

    uri = f"sqlite:///{no_fashion_mnist / 'mlflow.db'}"
    record = tracking.store_for(uri).create_study(PRESETS["figure6-quick"].to_dict())

    assert main(["run", "--study-id", record.study_id, "--mlflow-uri", uri]) == 1

    failed = tracking.store_for(uri).get_study(record.study_id)
    assert failed.status == "failed"
    assert failed.error == sources.locate("fashion_mnist").hint
    assert list(tracking.store_for(uri).load_trials(record.study_id)) == []
    assert not (no_fashion_mnist / "ray_results").exists()


def test_progress_line_shows_the_best_in_the_metrics_unit() -> None:
    import io
    from types import SimpleNamespace

    from studies.cli.run import ProgressLine
    from studies.workloads.text import VAL_LOSS

    counts = dict(done=3, total=48, running=12, finished=3, diverged=0, failed=0)
    progress = SimpleNamespace(**counts, interrupted=False, best_trial="adamw-lr0.01-none-s0")
    loss_stream, acc_stream = io.StringIO(), io.StringIO()
    ProgressLine(loss_stream, metric=VAL_LOSS)(SimpleNamespace(**vars(progress), best_acc=2.29))
    ProgressLine(acc_stream)(SimpleNamespace(**vars(progress), best_acc=0.812))

    assert "best 2.29 nats/char (adamw-lr0.01-none-s0)" in loss_stream.getvalue()
    assert "best 81.20% (adamw-lr0.01-none-s0)" in acc_stream.getvalue()
