"""The compose stack on loopback, without Docker: Postgres, an MLflow server on it, Ray nodes.

- ``Postgres``: Debian's PostgreSQL (``/usr/lib/postgresql/<version>/bin``; ``postgres`` in the
  foreground, as our child) in a temporary
  directory on a free loopback port, with the role ``robustness`` (password auth over TCP,
  as in the compose file), the database ``mlflow`` and ``optuna`` made by the stack's own init
  script (docker/postgres/10-optuna.sh). Postgres refuses to
  run as root, so as root it runs as the ``postgres`` system user (``runuser``).
- ``MlflowServer``: ``mlflow server`` on that Postgres, configured as the compose file does it
  (``MLFLOW_BACKEND_STORE_URI=postgresql+psycopg2://...``, ``MLFLOW_ARTIFACTS_DESTINATION``,
  ``MLFLOW_SERVER_ALLOWED_HOSTS``, ``--serve-artifacts``), on a free loopback port.
- ``RayCluster``: a Ray head (no trials) and workers as ``ray start --block`` processes on a
  loopback address with token auth.

All are context managers that start, poll and stop their processes with ``service.processes.supervise``
(the service's own helper: each in a session of its own, stopped by its pid and its group),
stop only what they started, and remove their files.
``postgres_bin()`` says why Postgres cannot run here, for a clear skip.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from service.processes import supervise
from studies.errors import TrackingError

POSTGRES_ROOT = Path("/usr/lib/postgresql")
POSTGRES_SYSTEM_USER = "postgres"
ROLE = "robustness"  # the compose file's POSTGRES_USER
DATABASES = ("mlflow", "optuna")  # POSTGRES_DB, then what docker/postgres/ creates
INIT_SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "postgres" / "10-optuna.sh"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def postgres_bin() -> tuple[Path | None, str]:
    """The newest PostgreSQL bin directory, or None and the reason there is none usable."""
    candidates = sorted(
        (p.parent for p in POSTGRES_ROOT.glob("*/bin/postgres")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        return (
            None,
            f"no PostgreSQL binaries under {POSTGRES_ROOT}/*/bin (apt-get install postgresql)",
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(POSTGRES_SYSTEM_USER)
        except KeyError:
            return None, f"running as root and no '{POSTGRES_SYSTEM_USER}' user to run Postgres as"
        if shutil.which("runuser") is None:
            return None, "running as root and no runuser to drop to the postgres user"
    return candidates[-1], ""


class Postgres:
    def __init__(self, *, startup_timeout_s: float = 60.0) -> None:  # seconds
        bin_dir, why = postgres_bin()
        if bin_dir is None:
            raise RuntimeError(why)
        self.bin = bin_dir
        self.password = secrets.token_hex(16)  # hex: safe inside a URL, as .env.example asks
        self.port = free_port()
        self.startup_timeout_s = startup_timeout_s
        self.root = Path(tempfile.mkdtemp(prefix="robustness-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _as_owner(self, *command: str | Path) -> list[str]:
        args = [str(c) for c in command]
        if os.geteuid() == 0:
            return ["runuser", "-u", POSTGRES_SYSTEM_USER, "--", *args]
        return args

    def url(self, database: str) -> str:
        """For SQLAlchemy (MLflow, Optuna). The driver is named: SQLAlchemy 2.1 reads a bare
        ``postgresql://`` as psycopg 3, which is not installed; psycopg2 is."""
        return f"postgresql+psycopg2://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """For libpq (psycopg2.connect, psql)."""
        return f"postgresql://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.sockets.mkdir()
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            owner = pwd.getpwnam(POSTGRES_SYSTEM_USER)
            for path in (self.root, self.sockets, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            self._as_owner(
                self.bin / "initdb",
                "-D", self.data,
                "-U", ROLE,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",  # TCP needs the password, as in the stack
                "--encoding=UTF8",
                "--no-locale",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )  # fmt: skip
        pwfile.unlink()
        # The server in the foreground as our child (service.processes.supervise), not daemonised by
        # pg_ctl: one way to start, poll and stop every process the tests run.
        command = self._as_owner(
            self.bin / "postgres",
            "-D", self.data,
            "-p", str(self.port),
            "-k", self.sockets,
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off", "-c", "synchronous_commit=off",  # throwaway data
            "-c", "full_page_writes=off",
            "-c", "shared_buffers=32MB", "-c", "max_connections=50",
        )  # fmt: skip
        self._process = supervise.spawn(command, log_path=self.log)
        supervise.wait_healthy(
            self._process,
            self._accepts_connections,
            timeout_s=self.startup_timeout_s,
            what="postgres",
            error=TrackingError,
            log_path=self.log,
        )
        import psycopg2

        connection = psycopg2.connect(self.dsn("postgres"))
        try:
            connection.autocommit = True  # CREATE DATABASE refuses a transaction
            with connection.cursor() as cursor:  # what POSTGRES_DB does in the image
                cursor.execute(f'CREATE DATABASE "{DATABASES[0]}" OWNER "{ROLE}"')
        finally:
            connection.close()
        # The stack's init script makes the others, as the image's entrypoint would run it.
        subprocess.run(
            ["bash", str(INIT_SCRIPT)],
            env={
                "PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                "PGHOST": str(self.sockets),
                "PGPORT": str(self.port),
                "POSTGRES_USER": ROLE,
                "POSTGRES_DB": DATABASES[0],
            },
            check=True,
            capture_output=True,
            timeout=60,
        )

    def query(
        self, database: str, sql: str, params: tuple[object, ...] = ()
    ) -> list[tuple[object, ...]]:
        import psycopg2

        connection = psycopg2.connect(self.dsn(database))
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def _accepts_connections(self) -> bool:
        import psycopg2

        psycopg2.connect(self.dsn("postgres"), connect_timeout=2).close()
        return True

    def stop(self) -> None:
        process, self._process = self._process, None
        # SIGINT is Postgres's fast shutdown (SIGTERM would wait for every client to leave)
        supervise.stop_process(process, grace_s=30, term_signal=signal.SIGINT)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class MlflowServer:
    def __init__(self, postgres: Postgres, *, startup_timeout_s: float = 180.0) -> None:  # seconds
        self.postgres = postgres
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout_s = startup_timeout_s  # the first start migrates the schema
        self.root = Path(tempfile.mkdtemp(prefix="robustness-mlflow-"))
        self.artifacts = self.root / "mlartifacts"
        self.log = self.root / "mlflow.log"
        self.allowed_hosts = f"127.0.0.1:{self.port},localhost:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.artifacts.mkdir()
        # Configured as docker-compose.yml configures the mlflow service: the store, the
        # artifacts and the allowed hosts through the environment, the rest as flags.
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--serve-artifacts",
            "--workers", "1",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env |= {
            "MLFLOW_BACKEND_STORE_URI": self.postgres.url("mlflow"),
            "MLFLOW_ARTIFACTS_DESTINATION": str(self.artifacts),
            "MLFLOW_SERVER_ALLOWED_HOSTS": self.allowed_hosts,
        }
        # service.processes.supervise: its own session, so the group is the server and its workers
        self._process = supervise.spawn(command, env=env, log_path=self.log)
        try:
            supervise.wait_healthy(
                self._process,
                self._healthy,
                timeout_s=self.startup_timeout_s,
                what="mlflow server",
                error=TrackingError,
                log_path=self.log,
            )
        except TrackingError as exc:
            raise TrackingError(f"{exc}: {self.log.read_text()[-3000:]}") from None

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
            return bool(response.status == 200)

    def stop(self) -> None:
        process, self._process = self._process, None
        # SIGTERM to the group, a grace period, then SIGKILL to what is left of it
        supervise.stop_process(process, grace_s=15)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


WORKER_START_ATTEMPTS = 3


class NodeExitedError(RuntimeError):
    """A ``ray start`` process ended while the cluster was starting."""

    def __init__(self, process: subprocess.Popen[bytes], message: str) -> None:
        super().__init__(f"a Ray node exited {message}")
        self.process = process


class RayCluster:
    """A Ray head and workers as separate ``ray start --block`` processes, as in the stack.

    The head runs no trials (``--num-cpus=0 --num-gpus=0``); each worker offers
    ``worker_cpus``. Token auth is on (``RAY_AUTH_MODE=token``, a fresh ``RAY_AUTH_TOKEN``).

    Everything stays on a loopback address: Ray 2.60 turns ``--node-ip-address=127.0.0.1``
    (and ``localhost``) into the machine's outward address, but any other 127.x address is
    taken as given, and the whole 127.0.0.0/8 range is loopback on Linux. Every port is picked
    free (GCS, dashboard, client server, agents, worker ranges), so the cluster does not collide
    with another Ray on the machine. Each node runs in its own session; ``stop`` signals those
    process groups and then any process left that names this cluster's temp dir.
    """

    def __init__(
        self,
        *,
        workers: int = 2,
        worker_cpus: int = 1,  # CPU cores each worker offers
        node_ip: str = "127.0.0.2",
        startup_timeout_s: float = 180.0,  # seconds, the whole cluster
    ) -> None:
        self.workers = workers
        self.worker_cpus = worker_cpus
        self.node_ip = node_ip
        self.startup_timeout_s = startup_timeout_s
        self.token = secrets.token_hex(32)
        self.port = free_port()
        self.dashboard_port = free_port()
        self.address = f"{node_ip}:{self.port}"
        self.dashboard_url = f"http://{node_ip}:{self.dashboard_port}"
        self.root = Path(tempfile.mkdtemp(prefix="robustness-ray-"))
        self._processes: list[subprocess.Popen[bytes]] = []
        self._ray = str(Path(sys.executable).parent / "ray")

    @property
    def env(self) -> dict[str, str]:
        """The environment a client of this cluster needs (token auth)."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    def _start_node(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.env, "RAY_USAGE_STATS_ENABLED": "0"}
        env.pop("RAY_ADDRESS", None)  # never attach to someone else's cluster
        common = [
            f"--node-ip-address={self.node_ip}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            "--num-gpus=0",
            "--disable-usage-stats",
            "--block",
        ]
        process = supervise.spawn(
            [self._ray, "start", *args, *common], env=env, log_path=self.root / f"{name}.log"
        )
        self._processes.append(process)
        return process

    def _alive_nodes(self) -> int:
        result = subprocess.run(
            [self._ray, "status", "--address", self.address],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        active = result.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return active.count(" node_") if result.returncode == 0 else 0

    def start(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        self._start_node(
            "head",
            "--head",
            f"--port={self.port}",
            "--num-cpus=0",
            f"--dashboard-host={self.node_ip}",
            f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={free_port()}",
            f"--temp-dir={self.root / 'tmp'}",
        )
        self._wait(deadline, lambda: self._healthy(), "the head's GCS")
        # One at a time: a raylet must register within Ray's fixed 30 s, which several
        # starting at once on a busy 2-core machine can miss; one that misses it is retried.
        for i in range(self.workers):
            low = 20000 + 1000 * i + (os.getpid() % 20) * 50  # worker ports, disjoint per node
            for attempt in range(1, WORKER_START_ATTEMPTS + 1):
                process = self._start_node(
                    f"worker{i}",
                    f"--address={self.address}",
                    f"--num-cpus={self.worker_cpus}",
                    f"--min-worker-port={low}",
                    f"--max-worker-port={low + 49}",
                )
                try:
                    self._wait(
                        deadline,
                        lambda n=i + 2: self._alive_nodes() == n,
                        f"{i + 1} worker(s) alive",
                    )
                    break
                except NodeExitedError as exited:
                    if exited.process is not process or attempt == WORKER_START_ATTEMPTS:
                        raise
                    self._processes.remove(process)
                    supervise.stop_process(process, grace_s=0)  # what the failed start left

    def _healthy(self) -> bool:
        result = subprocess.run(
            [self._ray, "health-check", "--address", self.address],
            env={**os.environ, **self.env},
            capture_output=True,
            timeout=60,
        )
        return result.returncode == 0

    def _wait(self, deadline: float, ready: Callable[[], bool], what: str) -> None:
        while time.monotonic() < deadline:
            for process in self._processes:
                if process.poll() is not None:
                    raise NodeExitedError(process, f"while waiting for {what}: {self.logs()}")
            if ready():
                return
            time.sleep(1.0)
        raise TimeoutError(
            f"Ray cluster: no {what} after {self.startup_timeout_s} s: {self.logs()}"
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.root.glob("*.log"))
        )

    def stop(self) -> None:
        processes, self._processes = self._processes, []
        # Workers first, the head last; each ``ray start --block`` gets SIGTERM alone and
        # stops its own daemons in order, as LocalRay stops the embedded head.
        deadline = time.monotonic() + 10  # seconds for a graceful stop, all nodes together
        for process in reversed(processes):
            supervise.stop_process(
                process, grace_s=max(0.1, deadline - time.monotonic()), term_group=False
            )
        # Ray's own daemons (raylet, GCS, agents, workers) may leave the group: they all name
        # this cluster's temp dir or GCS address on their command line.
        supervise.kill_naming([str(self.root), f"{self.node_ip}:{self.port}"])
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
