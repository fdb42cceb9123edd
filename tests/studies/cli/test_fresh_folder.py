"""Every command works in an empty folder: whatever it writes under the home (MLflow's and
Optuna's SQLite files, Ray Tune's storage, reports, logs, the theory figures) it creates
first. Each command runs as a user runs it, in a folder of its own with no ``.robustness/``
and none of the project's environment variables set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.processes import supervise
from service.processes.local_ray import free_port
from studies.errors import RobustnessError

pytestmark = pytest.mark.slow

SPEC = {
    "name": "fresh",
    "dataset": "digits",
    "model": "mlp",
    "optimizers": ["sgd"],
    "learning_rates": [0.1],
    "epochs": 1,
    "batch_size": 64,
    "train_subset": 300,
}
PROJECT_ENV = (
    "ROBUSTNESS_HOME",
    "ROBUSTNESS_DATA_DIR",
    "ROBUSTNESS_STORAGE",
    "ROBUSTNESS_OPTUNA_STORAGE",
    "MLFLOW_TRACKING_URI",
    "RAY_ADDRESS",
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROJECT_ENV}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
    return env


def _fresh(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


def _robustness(folder: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "studies", *args],
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_run_grid_then_report_and_theory_in_empty_folders(tmp_path: Path) -> None:
    folder = _fresh(tmp_path, "grid")
    (folder / "spec.json").write_text(json.dumps(SPEC))

    done = _robustness(folder, "run", "spec.json")

    assert done.returncode == 0, done.stderr[-3000:]
    study_id = json.loads(done.stdout.strip().splitlines()[-1])["study_id"]
    assert (folder / ".robustness" / "mlflow.db").is_file()
    assert (folder / ".robustness" / "ray_results").is_dir()

    elsewhere = _fresh(tmp_path, "report")
    uri = f"sqlite:///{folder / '.robustness' / 'mlflow.db'}"
    out = elsewhere / "not" / "yet" / "there"
    report = subprocess.run(
        [sys.executable, "-m", "studies", "report", study_id, "--out", str(out)],
        cwd=elsewhere,
        env={**_env(), "MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    assert (out / "summary.json").is_file()

    theory_folder = _fresh(tmp_path, "theory")
    theory = _robustness(theory_folder, "theory", "--steps", "60", "--samples", "300")
    assert theory.returncode == 0, theory.stderr[-3000:]
    assert any((theory_folder / ".robustness" / "theory").iterdir())


def test_run_optuna_with_its_own_sqlite_in_an_empty_folder(tmp_path: Path) -> None:
    """The case that crashed with 'unable to open database file': Optuna's store is
    <home>/optuna.db, and nothing had created the home."""
    folder = _fresh(tmp_path, "optuna")
    spec = {
        **SPEC,
        "name": "fresh-optuna",
        "optimizers": ["sgd", "adam"],
        "learning_rates": [0.01, 0.1],
        "search": {"kind": "optuna", "num_samples": 2},
    }
    (folder / "spec.json").write_text(json.dumps(spec))

    done = _robustness(folder, "run", "spec.json", "--mlflow-uri", f"sqlite:///{folder}/m.db")

    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "succeeded"
    assert (folder / ".robustness" / "optuna.db").is_file() and (folder / "m.db").is_file()


def test_serve_in_an_empty_folder(tmp_path: Path) -> None:
    folder = _fresh(tmp_path, "serve")
    port = free_port()
    env = {**_env(), "RAY_NUM_CPUS": "1"}
    log = tmp_path / "serve.log"  # outside the folder, which must stay as a newcomer's
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--no-mlflow-ui"]
    process = supervise.spawn(command, env=env, log_path=log, cwd=folder)
    try:
        supervise.wait_healthy(
            process,
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200,
            timeout_s=240,
            what="robustness serve",
            error=RobustnessError,
            log_path=log,
            interval_s=1.0,
        )
        listed = httpx.get(f"http://127.0.0.1:{port}/studies", timeout=30)
        assert listed.status_code == 200 and listed.json()["items"] == []
        assert (folder / ".robustness" / "mlflow.db").is_file()
    finally:
        # SIGTERM: the service stops its Ray head; then SIGKILL to what is left of its group
        supervise.stop_process(process, grace_s=60, term_group=False)
