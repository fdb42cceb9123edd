"""The embedded default's Ray: a single-node head on 127.0.0.1 that the service starts and stops.

``ray start --head --block`` runs as a child in its own session, told 127.0.0.1 for the
node, GCS and the dashboard (whose Jobs API the service talks to); the GCS, dashboard and
job agent ports are picked free (another Ray on the machine may hold Ray's defaults).
Ray 2.60 still binds some node services (the job agent, the Ray Client server) to the
machine's address; Ray's token auth, on by default, is what guards those.

The head runs niced (10 by default) with all it starts: the service and the studies share
one machine's cores, and the API should not wait behind a study's driver or trials
(training alone runs as fast; with nothing else to run, niceness costs nothing). On 2
cores, POSTs sent back to back while the previous studies' Ray processes start and stop:
p99 550 ms at niceness 0, 375 ms at 10 (one run each of bench/api_latency.py; POSTs on a
settled machine: 92 and 68 ms).

One head per home, ever: a started head writes its pid and ports to ``<home>/ray-head.json``
(``record``). A service started on a home whose recorded head is alive (its predecessor was
SIGKILLed, the head in its own session lived on) reattaches to it when its Jobs API answers,
so the studies running there go on; a recorded head that does not answer is stopped by its
pid (only if that pid is still a ``ray start`` with the recorded port) and a new one started.

Stopping sends SIGTERM to that one process, which drains and stops the processes it
started; what is left of its process group after a grace period is killed. Never ``ray stop``: other Ray clusters on the machine
are not ours. Ray's token auth (``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN``) is inherited from the
environment as it is, not switched off.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from service.processes import supervise
from studies.errors import ClusterError

STOP_GRACE_S = 40.0  # seconds: Ray drains the node for up to 30 s on SIGTERM


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def enable_token_auth() -> None:
    """Ray's own default for a new local cluster (what ``ray.init()`` does): token auth on
    unless ``RAY_AUTH_MODE`` says otherwise, with a token made if there is none. Set in this
    process's environment, so the head we start and our Jobs client agree on it."""
    if "RAY_AUTH_MODE" in os.environ:
        return  # the operator's choice, passed through as it is
    from ray._private.authentication.authentication_token_setup import (
        enable_token_auth_by_default,
        ensure_token_if_auth_enabled,
    )

    enable_token_auth_by_default()
    ensure_token_if_auth_enabled()


class LocalRayHead:
    """A ``ray start --head`` child process; ``dashboard_url`` is its Jobs API address."""

    def __init__(
        self,
        *,
        num_cpus: int | None = None,
        log_dir: Path,
        niceness: int = 10,
        record: Path | None = None,
    ) -> None:
        self.num_cpus = num_cpus
        self.record = record  # where this head's pid and ports are kept; None: nowhere
        self._adopted_pid: int | None = None  # a head a previous service started
        self.reattached = False
        self.log_dir = log_dir
        self.niceness = niceness
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        # the job agent's HTTP port defaults to a fixed 52365: another Ray on the machine (a
        # test's ray.init(), a second service) holding it leaves this head with no job agent,
        # and every submission fails with "No available agent to submit job"
        self.agent_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def pid(self) -> int | None:
        if self._process is not None:
            return self._process.pid
        return self._adopted_pid

    def start(self, *, timeout_s: float) -> None:
        enable_token_auth()
        if self._reattach():
            return
        ray_cli = Path(sys.executable).with_name("ray")
        nice = shutil.which("nice")
        niced = [nice, "-n", str(self.niceness)] if nice and self.niceness else []
        command = [
            *niced,  # nice execs ray: the pid is still ray start's
            str(ray_cli),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={self.gcs_port}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--dashboard-agent-listen-port={self.agent_port}",
            "--disable-usage-stats",
        ]
        if self.num_cpus is not None:
            command.append(f"--num-cpus={self.num_cpus}")
        env = dict(os.environ)
        env.pop("RAY_ADDRESS", None)  # a head of our own, never someone else's cluster
        self._process = supervise.spawn(command, env=env, log_path=self.log_dir / "ray-head.log")
        self._wait_ready(timeout_s=timeout_s)
        if self.record is not None:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            state = {
                "pid": self._process.pid,
                "gcs_port": self.gcs_port,
                "dashboard_port": self.dashboard_port,
                "agent_port": self.agent_port,
            }
            self.record.write_text(json.dumps(state))

    def _reattach(self) -> bool:
        """Take over the recorded head if it is alive and answers; stop it if it is alive and
        does not. True when reattached."""
        if self.record is None or not self.record.is_file():
            return False
        try:
            state = json.loads(self.record.read_text())
            pid, gcs_port = int(state["pid"]), int(state["gcs_port"])
            dashboard_port, agent_port = int(state["dashboard_port"]), int(state["agent_port"])
        except (OSError, ValueError, KeyError, TypeError):
            self.record.unlink(missing_ok=True)
            return False
        if not _is_our_head(pid, gcs_port):
            self.record.unlink(missing_ok=True)
            return False
        self.gcs_port, self.dashboard_port, self.agent_port = gcs_port, dashboard_port, agent_port
        self._adopted_pid = pid
        try:
            from ray.job_submission import JobSubmissionClient

            JobSubmissionClient(self.dashboard_url).list_jobs()
        except Exception:  # alive but not answering: stop it, start anew
            self.stop()
            self.gcs_port, self.dashboard_port, self.agent_port = (
                free_port(),
                free_port(),
                free_port(),
            )
            return False
        self.reattached = True
        return True

    def _wait_ready(self, *, timeout_s: float) -> None:
        from ray.job_submission import JobSubmissionClient

        def answers() -> bool:
            JobSubmissionClient(self.dashboard_url).list_jobs()
            return True

        assert self._process is not None
        try:
            supervise.wait_healthy(
                self._process,
                answers,
                timeout_s=timeout_s,
                what="the local Ray head",
                error=ClusterError,
                log_path=self.log_dir / "ray-head.log",
            )
        except ClusterError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop this head and only it: SIGTERM to ``ray start``, then its group if need be."""
        if self._adopted_pid is not None:
            pid, self._adopted_pid = self._adopted_pid, None
            supervise.stop_pid(pid, grace_s=STOP_GRACE_S)
        process, self._process = self._process, None
        # SIGTERM to ray start alone: it drains and stops the GCS, raylet and dashboard it
        # put in its session; what is left of that session is killed after the grace period
        supervise.stop_process(process, grace_s=STOP_GRACE_S, term_group=False)
        self._forget()

    def _forget(self) -> None:
        if self.record is not None:
            self.record.unlink(missing_ok=True)


def _is_our_head(pid: int, gcs_port: int) -> bool:
    """``pid`` is alive and is a ``ray start --head`` with this GCS port (not a reused pid)."""
    args = supervise.cmdline(pid)
    alive = supervise.pid_alive(pid)
    return alive and "start" in args and "--head" in args and f"--port={gcs_port}" in args
