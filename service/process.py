"""The service as a child process (uvicorn on a free loopback port): what ``robustness
quickstart`` runs, and what the tests run. ``stop`` sends SIGTERM so the lifespan stops the
Ray head and the MLflow UI it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from service.local_ray import free_port
from studies.errors import ClusterError

STOP_TIMEOUT_S = 90.0  # seconds: the Ray head drains before it exits


class ServiceProcess:
    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        port: int | None = None,
        log_path: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host  # the interface uvicorn binds; ``url`` always goes through loopback
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, *, timeout_s: float = 180.0) -> ServiceProcess:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "service.main:create_app",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--no-access-log",
        ]
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            command, env=self.env, stdout=out, stderr=subprocess.STDOUT
        )
        if self.log_path:
            out.close()  # type: ignore[union-attr]
        try:
            self._wait_healthy(timeout_s=timeout_s)
        except BaseException:  # Ctrl-C while starting, or it never came up: leave nothing
            self.stop()
            raise
        return self

    def _wait_healthy(self, *, timeout_s: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ClusterError(
                    f"the service exited with code {self._process.returncode} while starting"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise ClusterError(f"the service did not answer /healthz within {timeout_s:.0f} s")

    def stop(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        return process.returncode

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
