"""``robustness serve``, ``quickstart`` and ``reconcile`` are registered; ``reconcile``
needs the service's Ray head; ``serve`` refuses to listen beyond
loopback without an API token; job entrypoints take only our hex ids."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from service.jobs import entrypoint
from service.settings import Settings
from studies.errors import ClusterError
from studies.spec import StudySpec


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "RAY_ADDRESS")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def test_help_lists_the_service_commands() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    assert "serve" in result.stdout and "quickstart" in result.stdout
    assert "reconcile" in result.stdout


def test_reconcile_without_a_running_head_says_so(tmp_path: os.PathLike[str]) -> None:
    result = _cli("reconcile", ROBUSTNESS_HOME=str(tmp_path), MLFLOW_TRACKING_URI="")
    assert result.returncode == 2, result.stderr
    assert "no Ray head is recorded" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_public_host_without_a_token() -> None:
    result = _cli("serve", "--host", "0.0.0.0", "--port", "1")
    assert result.returncode == 2
    assert "API_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_entrypoint_takes_only_hex_ids() -> None:
    command = entrypoint("0123abcd" * 4, resume=True)
    assert command == (
        f"{sys.executable} -m studies run --study-id {'0123abcd' * 4} --ray-address auto --resume"
    )
    for bad in ("../../etc", "abc; rm -rf /", "ABCDEF0123456789", ""):
        with pytest.raises(ClusterError):
            entrypoint(bad)


def test_settings_make_sqlite_paths_absolute(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(str(tmp_path))
    for name in (
        "ROBUSTNESS_HOME",
        "ROBUSTNESS_DATA_DIR",
        "ROBUSTNESS_STORAGE",
        "ROBUSTNESS_DOWNLOAD",
    ):
        monkeypatch.delenv(name, raising=False)  # CI sets ROBUSTNESS_HOME: an explicit setting
    settings = Settings(mlflow_tracking_uri="sqlite:///rel/mlflow.db", robustness_home="h")  # type: ignore[arg-type]
    assert settings.tracking_uri == f"sqlite:///{tmp_path}/rel/mlflow.db"
    assert settings.job_env()["ROBUSTNESS_HOME"] == f"{tmp_path}/h"
    cluster = Settings(ray_address="http://head:8265", mlflow_tracking_uri="http://mlflow:5000")  # type: ignore[arg-type]
    assert cluster.job_env() == {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    assert Settings(api_token="").token() is None  # type: ignore[arg-type]


def test_every_limit_has_one_environment_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings read the ROBUSTNESS_ names, admission's refusal names the same one, and a
    retired name is reported rather than silently ignored."""
    from service.settings import LIMITS, retired_names
    from studies.admission import MAX_TRIALS_ENV, check_trials
    from studies.errors import SpecError

    for field, env_name in LIMITS.items():
        monkeypatch.setenv(env_name, "2048")
        assert getattr(Settings(), field) == 2048, env_name
        monkeypatch.delenv(env_name)
    assert LIMITS["max_trials"] == MAX_TRIALS_ENV == "ROBUSTNESS_MAX_TRIALS"
    monkeypatch.setenv("MAX_TRIALS", "3")
    assert Settings().max_trials != 3
    assert retired_names() == ["MAX_TRIALS is no longer read; set ROBUSTNESS_MAX_TRIALS instead"]
    monkeypatch.setenv(MAX_TRIALS_ENV, "1")
    spec = StudySpec.parse(
        {
            "name": "limit",
            "dataset": "digits",
            "model": "mlp",
            "optimizers": ["sgd", "adam"],
            "learning_rates": [0.1],
        }
    )
    with pytest.raises(SpecError, match=MAX_TRIALS_ENV):
        check_trials(spec)
