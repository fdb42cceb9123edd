"""The service's settings, in one ``Settings(BaseSettings)`` read from the environment.

Names are the environment variables (case-insensitive): ``RAY_ADDRESS`` (unset: the service
starts its own single-node Ray head on 127.0.0.1), ``MLFLOW_TRACKING_URI`` (unset: SQLite in the
project home), ``MLFLOW_UI_URL`` (for links; unset on the embedded default: the service starts an
MLflow UI on loopback over the same store), ``API_TOKEN`` (bearer token for POST and cancel),
``DATA_DIR`` and ``ROBUSTNESS_HOME`` (where datasets and records live; never taken from a
request), the limits, and the embedded head's ``RAY_NUM_CPUS`` and ``RAY_NICENESS``.
"""

from __future__ import annotations

import ipaddress
import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from studies.admission import DEFAULT_MAX_TRIALS

LOOPBACK_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "localhost", "::1"})


def is_loopback(host: str) -> bool:
    """``localhost``, or any address in 127.0.0.0/8 or ::1."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Where things run and are recorded
    ray_address: str | None = None  # a cluster's address; None: start a local head
    mlflow_tracking_uri: str | None = None  # None: sqlite:///<home>/mlflow.db
    mlflow_ui_url: str | None = None  # base URL of the MLflow UI, for links
    mlflow_ui: bool = True  # embedded default: start an MLflow UI on loopback
    robustness_home: Path = Path(".robustness")
    data_dir: Path | None = None  # None: <home>/data
    experiment: str = "robustness"

    # Safety
    api_token: SecretStr | None = None  # bearer token for POST /studies and cancel

    # Limits
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)  # bytes per request body
    max_trials: int = Field(default=DEFAULT_MAX_TRIALS, ge=1)  # trials per study
    max_active_studies: int = Field(default=4, ge=1)  # queued + running at once
    retry_after_s: int = Field(default=30, ge=1)  # seconds, sent with 429
    page_limit: int = Field(default=100, ge=1)  # studies per page, at most

    # The reconciler (service.reconciler): how often it compares records with Ray's jobs, and
    # how many times a study whose driver died is resubmitted before it is failed
    reconcile_interval_s: float = Field(default=5.0, gt=0)  # seconds
    max_restarts: int = Field(default=3, ge=0)  # per study, counted on its parent run

    # The embedded Ray head
    ray_num_cpus: int | None = Field(default=None, ge=1)  # None: all cores
    ray_start_timeout_s: float = Field(default=90.0, gt=0)  # seconds
    # Niceness of the head and everything it starts (drivers, trials): on one machine the API
    # answers first and training takes the rest of the CPU; 0 shares it evenly.
    ray_niceness: int = Field(default=10, ge=0, le=19)

    @cached_property
    def home(self) -> Path:
        return self.robustness_home.expanduser().resolve()

    @cached_property
    def tracking_uri(self) -> str:
        """The tracking URI with a relative SQLite path made absolute (jobs run elsewhere)."""
        uri = self.mlflow_tracking_uri
        if not uri:
            return f"sqlite:///{self.home / 'mlflow.db'}"
        prefix = "sqlite:///"
        if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
            return prefix + str(Path(uri.removeprefix(prefix)).resolve())
        return uri

    @cached_property
    def resolved_data_dir(self) -> Path:
        return (self.data_dir or self.home / "data").expanduser().resolve()

    @property
    def embedded(self) -> bool:
        """True on the embedded default: no cluster address given."""
        return not self.ray_address

    def token(self) -> str | None:
        token = self.api_token.get_secret_value() if self.api_token else ""
        return token or None  # an empty API_TOKEN means no token

    def local_env(self) -> dict[str, str]:
        """The engine's environment in this process (``studies.paths`` reads it)."""
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "ROBUSTNESS_HOME": str(self.home),
            "ROBUSTNESS_DATA_DIR": str(self.resolved_data_dir),
        }

    def job_env(self) -> dict[str, str]:
        """What a study's Ray Job needs to find the same records, data and Tune state. On a
        cluster, paths are passed only when set explicitly (the nodes' own defaults otherwise:
        this machine's paths need not exist there)."""
        env = {"MLFLOW_TRACKING_URI": self.tracking_uri}
        if self.embedded or "robustness_home" in self.model_fields_set:
            env["ROBUSTNESS_HOME"] = str(self.home)
        if self.embedded or "data_dir" in self.model_fields_set:
            env["ROBUSTNESS_DATA_DIR"] = str(self.resolved_data_dir)
        for name in ("ROBUSTNESS_STORAGE", "ROBUSTNESS_OPTUNA_STORAGE", "ROBUSTNESS_MAX_TRIALS"):
            if os.environ.get(name):  # shared storage a cluster's nodes reach
                env[name] = os.environ[name]
        return env
