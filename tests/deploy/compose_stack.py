"""The compose stack for real: a private Docker daemon, the images, the stack on loopback.

- ``engine_unavailable()``: why no Docker engine can run here (for a skip), or None.
- ``PrivateDockerd``: the checkout's own daemon (scripts/private_dockerd.sh: no bridge, no
  iptables, its data-root under .robustness/docker); stopped by its pid at the end when this
  process started it.
- ``ComposeStack``: docker-compose.yml's loopback variant (scripts/compose_variants.py), every
  listener on a free loopback port, the secrets fresh, the data a copy of Fashion-MNIST; build,
  up, health, faults (``docker kill``, restart, down/up), HTTP to the API, and ``down -v``.

Nothing here sends a packet outside 127.0.0.0/8: the containers share the host's network and
bind loopback addresses; the only traffic elsewhere is the builds' (Debian's archive and the
package index). ``timings`` records each step's wall time (seconds) for docs/deploy.md.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
PRIVATE_DOCKERD = REPO / "scripts" / "private_dockerd.sh"
BASE_IMAGES = REPO / "scripts" / "docker_base_images.sh"
VARIANTS = REPO / "scripts" / "compose_variants.py"
SERVICES = ("postgres", "mlflow", "ray-head", "ray-worker", "api")
PROJECT = "robustness-compose-test"
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
RAY_IP = "127.0.0.2"
WORKER_PORT_SPAN = 50  # ports in each Ray node's worker-port range


def engine_unavailable() -> str | None:
    """Why a private Docker engine cannot run here, or None."""
    if sys.platform != "linux":
        return "a private dockerd needs Linux"
    if os.geteuid() != 0:
        return "a private dockerd needs root (the compose test runs as root in CI)"
    for tool, package in (("dockerd", "docker.io"), ("docker-compose", "docker-compose")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package}; `make test` does, as root)"
    if not Path(DOCKER).exists() and shutil.which(DOCKER) is None:
        return "no docker CLI (apt-get install docker.io)"
    return None


class CommandError(RuntimeError):
    pass


def run(
    command: list[str], *, env: dict[str, str] | None = None, timeout: float = 600, check=True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    if check and result.returncode != 0:
        raise CommandError(
            f"{' '.join(command[:6])} ... exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


class PrivateDockerd:
    """scripts/private_dockerd.sh start / stop; stops only a daemon this object started."""

    def __init__(self, root: Path | None = None) -> None:
        self.env = dict(os.environ)
        if root is not None:
            self.env["DOCKER_PRIVATE_ROOT"] = str(root)
        self.started = False
        self.host = ""
        self.pid: int | None = None

    def start(self) -> None:
        status = run([str(PRIVATE_DOCKERD), "status"], env=self.env, check=False)
        result = run([str(PRIVATE_DOCKERD), "start"], env=self.env, timeout=120)
        self.started = status.returncode != 0  # it was not running before
        self.host = result.stdout.strip().removeprefix("DOCKER_HOST=")
        self.pid = int(
            run([str(PRIVATE_DOCKERD), "status"], env=self.env)
            .stdout.split("pid ")[1]
            .split(")")[0]
        )

    def stop(self) -> None:
        if self.started:
            run([str(PRIVATE_DOCKERD), "stop"], env=self.env, timeout=120)
            self.started = False

    def data_root_size(self) -> str:
        return run([str(PRIVATE_DOCKERD), "du"], env=self.env).stdout.split()[0]


def _free_port() -> int:
    """A port free on every address (a bind to the wildcard fails if any address holds it)."""
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port: int = probe.getsockname()[1]
        return port


def _free_range(span: int, taken: set[int]) -> int:
    """The first of ``span`` consecutive ports free on every address (and not in ``taken``)."""
    for start in range(31000 + (os.getpid() % 40) * 200, 60000, span):
        ports = range(start, start + span)
        if taken & set(ports):
            continue
        probes: list[socket.socket] = []
        try:
            for port in ports:
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("0.0.0.0", port))
            return start
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError(f"no {span} consecutive free ports")


def _load_variants() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("compose_variants", VARIANTS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ComposeStack:
    """The loopback variant of docker-compose.yml, driven with Debian's docker-compose 1.29."""

    def __init__(self, workdir: Path, docker_host: str, fashion_mnist: Path) -> None:
        self.workdir = workdir
        self.docker_host = docker_host
        self.timings: dict[str, float] = {}
        self.outside: list[str] = []  # connections to a non-loopback peer seen (check_network)
        self.interfaces = sorted(name for _, name in socket.if_nameindex())  # before the stack
        self.file = workdir / "docker-compose.loopback.yml"
        self.env_file = workdir / "stack.env"
        self.data_dir = workdir / "data"
        self.variants = _load_variants()
        self.file.write_text(self.variants.render("loopback"))
        self.api_token = secrets.token_hex(24)
        self.secrets = {
            "API_TOKEN": self.api_token,
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "POSTGRES_PASSWORD": secrets.token_hex(16),
        }
        self.ports: dict[str, int] = {}
        self.choose_ports()
        raw = self.data_dir / "fashion_mnist" / "FashionMNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for source in fashion_mnist.iterdir():
            if source.is_file():
                shutil.copyfile(source, raw / source.name)

    def choose_ports(self) -> None:
        """Free ports for every listener, written to the env file. Called again just before the
        first `up` (the builds take minutes, and the host's ports are shared). Probed on the
        wildcard address: Ray's gRPC servers bind all interfaces whatever their node address."""
        ports: dict[str, int] = {}
        for var in self.variants.loopback_variables():
            if var.endswith("_MIN_WORKER_PORT"):
                continue
            if var.endswith("_MAX_WORKER_PORT"):
                low = _free_range(WORKER_PORT_SPAN, set(ports.values()))
                ports[var.replace("_MAX_", "_MIN_")] = low
                ports[var] = low + WORKER_PORT_SPAN - 1
                continue
            port = _free_port()
            while port in ports.values():
                port = _free_port()
            ports[var] = port
        self.ports = ports
        self.values = {
            **self.secrets,
            "DATA_DIR_HOST": str(self.data_dir),
            # Docker cannot raise a container's open-files limit above the host's hard limit
            # (here 20000: "error setting rlimit type 7: operation not permitted").
            "RAY_NOFILE": str(min(65536, _hard_nofile())),
            "RAY_WORKER_SHM_SIZE": "2gb",
            **{name: str(port) for name, port in ports.items()},
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.values.items()))

    # --- addresses (the hook for browser checks: mlflow_url is the stack's MLflow UI) ---------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['LOOPBACK_API_PORT']}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['LOOPBACK_MLFLOW_PORT']}"

    @property
    def ray_dashboard_url(self) -> str:
        return f"http://{RAY_IP}:{self.ports['LOOPBACK_RAY_DASHBOARD_PORT']}"

    def postgres_dsn(self, database: str) -> str:
        return (
            f"postgresql://robustness:{self.values['POSTGRES_PASSWORD']}@127.0.0.1:"
            f"{self.ports['LOOPBACK_POSTGRES_PORT']}/{database}"
        )

    # --- commands ------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in self.values and not key.startswith(("COMPOSE_", "DOCKER_"))
        }
        # The daemon's own builder (docker-py's), never BuildKit's frontend image or the CLI.
        return {
            **env,
            "DOCKER_HOST": self.docker_host,
            "COMPOSE_DOCKER_CLI_BUILD": "0",
            "DOCKER_BUILDKIT": "0",
        }

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return run([DOCKER, *args], env=self.env, timeout=timeout, check=check).stdout

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        command = [
            "docker-compose",
            "--project-name", PROJECT,
            "--project-directory", str(REPO),
            "--env-file", str(self.env_file),
            "-f", str(self.file),
            *args,
        ]  # fmt: skip
        return run(command, env=self.env, timeout=timeout, check=check).stdout

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(time.monotonic() - start, 1)

    def base_images(self) -> str:
        with self.timed("base images"):
            result = run([str(BASE_IMAGES)], env=self.env, timeout=1800)
        return result.stderr

    def build(self) -> None:
        # One build per image: the three project services share radam-robustness:latest.
        with self.timed("build"):
            self.compose("build", "mlflow", "ray-head", timeout=2400)
        # What a rebuild replaced (an old dependency layer is ~7 GB) goes: the data-root keeps
        # one copy of each image.
        self.docker("image", "prune", "--force", timeout=600)

    def up(self, what: str = "up") -> None:
        if what == "up":
            self.choose_ports()
        with self.timed(what):
            try:
                self.compose("up", "-d", "--no-build", timeout=600)
            except CommandError as exc:
                raise CommandError(f"{exc}\n{self.logs(tail=25)}") from None
            self.wait_healthy()

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-q", service).split()
        assert len(ids) == 1, f"{service}: containers {ids}"
        return ids[0]

    def state(self, service: str) -> dict[str, Any]:
        out = self.docker("inspect", "--format", "{{json .State}}", self.container(service))
        state: dict[str, Any] = json.loads(out)
        return state

    def health(self) -> dict[str, str]:
        result = {}
        for service in SERVICES:
            try:
                state = self.state(service)
            except (AssertionError, CommandError) as exc:
                result[service] = f"missing ({exc})"
                continue
            result[service] = (state.get("Health") or {}).get("Status") or state["Status"]
        return result

    def wait_healthy(self, timeout: float = 420) -> None:
        deadline = time.monotonic() + timeout
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            health = self.health()
            if all(status == "healthy" for status in health.values()):
                return
            time.sleep(2)
        raise AssertionError(f"not healthy after {timeout:.0f} s: {health}\n{self.logs()}")

    # --- the network rule ------------------------------------------------------------------

    def pids(self) -> set[int]:
        """The host pids of every process in the stack's containers."""
        pids: set[int] = set()
        for container in self.compose("ps", "-q").split():
            out = self.docker("top", container, "-eo", "pid", check=False)
            pids |= {int(word) for word in out.split() if word.isdigit()}
        return pids

    def outside_connections(self) -> list[str]:
        """The stack's TCP and UDP sockets with a peer outside 127.0.0.0/8 (none, by the
        network rule). The containers share the host's network, so its table is read (ss)
        and kept to the stack's processes."""
        pids = self.pids()
        found = []
        listing = run(["ss", "-tuanpH"], check=False).stdout
        for line in listing.splitlines():
            fields = line.split()
            if len(fields) < 6 or fields[1] in ("LISTEN", "UNCONN"):
                continue
            peer = fields[5].rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
            if peer in ("*", "0.0.0.0", "::"):
                continue
            owners = {int(pid) for pid in re.findall(r"pid=(\d+)", line)}
            if owners & pids and not ipaddress.ip_address(peer.split("%")[0]).is_loopback:
                found.append(line)
        return found

    def check_network(self) -> None:
        """Record any outside connection now (the test asserts none were ever seen)."""
        self.outside.extend(self.outside_connections())

    def logs(self, *services: str, tail: int = 40) -> str:
        return self.compose("logs", "--no-color", f"--tail={tail}", *services, check=False)

    def down(self, *, volumes: bool) -> None:
        args = ["down", "--timeout", "30"] + (["--volumes"] if volumes else [])
        with self.timed("down -v" if volumes else "down"):
            self.compose(*args, timeout=300)

    # --- the API -------------------------------------------------------------------------

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.api_token}"},
            timeout=30,
            trust_env=False,  # never a proxy: loopback only
        )

    def wait_for(
        self, what: str, probe: Callable[[], Any], *, timeout: float, interval: float = 1.0
    ) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_network()
            try:
                last = probe()
            except (httpx.HTTPError, OSError) as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(interval)
        raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})\n{self.logs()}")


def _hard_nofile() -> int:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 65536 if hard == resource.RLIM_INFINITY else int(hard)
