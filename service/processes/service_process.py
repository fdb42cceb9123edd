"""The service as a child process (uvicorn on a free loopback port): what ``robustness
quickstart`` runs, and what the tests run. ``stop`` sends SIGTERM so the lifespan stops the
Ray head and the MLflow UI it started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

import httpx

from service.processes import supervise
from service.processes.local_ray import free_port
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
        # no session of its own: a Ctrl-C in the terminal reaches it with its caller
        self._process = supervise.spawn(
            command, env=self.env, log_path=self.log_path, new_session=False
        )
        try:
            self._wait_healthy(timeout_s=timeout_s)
        except BaseException:  # Ctrl-C while starting, or it never came up: leave nothing
            self.stop()
            raise
        return self

    def _wait_healthy(self, *, timeout_s: float) -> None:
        assert self._process is not None
        supervise.wait_healthy(
            self._process,
            lambda: httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200,
            timeout_s=timeout_s,
            what="the service",
            error=ClusterError,
            log_path=self.log_path,
            interval_s=0.3,
        )

    def stop(self) -> int | None:
        process, self._process = self._process, None
        # SIGTERM: the lifespan stops the Ray head and the MLflow UI it started
        return supervise.stop_process(process, grace_s=STOP_TIMEOUT_S, term_group=False)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
