"""The MLflow UI of the embedded default: ``mlflow server`` on loopback over the same store.

Started as a child process (``<this python> -m mlflow server``), so the study links open the
view that compares a study's trial runs with no extra step. Bound to 127.0.0.1, and its Host
check allows only the loopback names of its own port.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from service.processes import supervise
from service.processes.local_ray import free_port
from studies.errors import TrackingError


class MlflowUi:
    def __init__(self, *, tracking_uri: str, artifacts_dir: Path, log_dir: Path) -> None:
        self.tracking_uri = tracking_uri
        self.artifacts_dir = artifacts_dir
        self.log_dir = log_dir
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_s: float | None = None) -> None:
        """Start the server; with ``wait_s``, wait that long for its /health. The service
        does not wait (the API works without the UI, which takes a while on a busy machine)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.tracking_uri,
            "--artifacts-destination",
            str(self.artifacts_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--allowed-hosts",
            f"127.0.0.1:{self.port},localhost:{self.port},127.0.0.1,localhost",
        ]
        self._process = supervise.spawn(command, log_path=self.log_dir / "mlflow-ui.log")
        if wait_s is not None:
            self.wait(timeout_s=wait_s)

    def state(self) -> str:
        """ "ok", "starting" or why not."""
        if self._process is None:
            return "not started"
        if self._process.poll() is not None:
            return (
                f"exited with code {self._process.returncode}; see {self.log_dir / 'mlflow-ui.log'}"
            )
        try:
            return (
                "ok"
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200
                else "starting"
            )
        except httpx.HTTPError:
            return "starting"

    def wait(self, *, timeout_s: float) -> None:
        assert self._process is not None
        try:
            supervise.wait_healthy(
                self._process,
                lambda: httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200,
                timeout_s=timeout_s,
                what="the MLflow UI",
                error=TrackingError,
                log_path=self.log_dir / "mlflow-ui.log",
            )
        except TrackingError:
            self.stop()
            raise

    def stop(self) -> None:
        process, self._process = self._process, None
        # mlflow server runs its web workers as children in the session we gave it
        supervise.stop_process(process, grace_s=10.0)
