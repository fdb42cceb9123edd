"""The compose files generated from docker-compose.yml (scripts/compose_variants.py).

``cpu`` (docker-compose.cpu.yml, committed): the stack without GPUs, on its compose network.
``loopback`` (generated when the compose test runs): the stack on the host's network, every
listener on 127.0.0.0/8. Both are checked as the other compose files are (the Compose
Specification's schema), and for what makes them what they are: the committed file is what the
script makes of today's docker-compose.yml (no drift), the CPU stack differs from the GPU stack
only by its GPU reservation, and the loopback stack names no service, no bridge, no published
port and no address outside loopback.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import compose_files as cf
import pytest
import yaml

REPO = cf.REPO
MAIN = REPO / "docker-compose.yml"
CPU = REPO / "docker-compose.cpu.yml"
SECRETS = {"API_TOKEN": "a" * 8, "RAY_AUTH_TOKEN": "b" * 8, "POSTGRES_PASSWORD": "c" * 8}
SERVICES = ("postgres", "mlflow", "ray-head", "ray-worker", "api")


def _variants() -> Any:
    spec = importlib.util.spec_from_file_location(
        "compose_variants", REPO / "scripts" / "compose_variants.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


variants = _variants()


@pytest.fixture(scope="module")
def loopback_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "loopback.yml"
    path.write_text(variants.render("loopback"))
    return path


def _loopback(path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    return cf.load(path, {**SECRETS, **(env or {})})


def test_the_committed_cpu_file_is_generated_from_docker_compose_yml() -> None:
    assert CPU.read_text() == variants.render("cpu"), (
        "docker-compose.cpu.yml is stale: python scripts/compose_variants.py cpu "
        "-o docker-compose.cpu.yml"
    )
    assert variants.main(["cpu", "--check", str(CPU)]) == 0


def test_check_says_when_a_variant_is_stale(tmp_path: Path) -> None:
    stale = tmp_path / "docker-compose.cpu.yml"
    stale.write_text(CPU.read_text().replace("restart: unless-stopped", "restart: always", 1))
    assert variants.main(["cpu", "--check", str(stale)]) == 1


@pytest.mark.parametrize("variant", ["cpu", "loopback"])
def test_variants_follow_the_compose_specification(variant: str, tmp_path: Path) -> None:
    path = tmp_path / f"{variant}.yml"
    path.write_text(variants.render(variant))
    assert cf.validate(cf.load(path, SECRETS)) == []
    # Secrets stay required variables, never defaults, in the generated files too.
    for ref in cf.references(path):
        if ref.name in SECRETS:
            assert ref.op == ":?", ref


def test_the_cpu_stack_is_the_gpu_stack_without_the_gpu_reservation() -> None:
    main, cpu = cf.load(MAIN, SECRETS), cf.load(CPU, SECRETS)
    main = {key: value for key, value in main.items() if not key.startswith("x-")}
    worker = main["services"]["ray-worker"]
    devices = worker.pop("deploy")["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "deploy" not in cpu["services"]["ray-worker"]
    assert cpu == main  # networks, ports, volumes, healthchecks, secrets: all the same


def test_the_loopback_stack_uses_the_host_network_only(loopback_file: Path) -> None:
    doc = _loopback(loopback_file)
    assert "networks" not in doc
    for name in SERVICES:
        service = doc["services"][name]
        assert service["network_mode"] == "host", name
        assert "networks" not in service and "ports" not in service, name
        assert "deploy" not in service, name  # no GPU reservation on a machine without one
        if "build" in service:
            assert service["build"]["network"] == "host", name  # the daemon has no bridge


def test_the_loopback_stack_binds_every_listener_to_loopback(loopback_file: Path) -> None:
    services = _loopback(loopback_file)["services"]
    assert "listen_addresses=127.0.0.1" in services["postgres"]["command"]
    mlflow = services["mlflow"]["command"]
    assert mlflow[mlflow.index("--host") + 1] == "127.0.0.1"
    head = cf.environment(services["ray-head"])
    assert head["RAY_DASHBOARD_HOST"] == "127.0.0.2"
    for node in ("ray-head", "ray-worker"):
        assert "--node-ip-address=127.0.0.2" in services[node]["command"], node
    assert cf.environment(services["api"])["API_HOST"] == "127.0.0.1"
    # No name of a compose service, no wildcard, no address outside 127.0.0.0/8 in a value
    # (the images' names aside: postgres:16-bookworm is an image, not an address).
    text = yaml.safe_dump(
        {name: {k: v for k, v in svc.items() if k != "image"} for name, svc in services.items()}
    )
    for name in ("postgres", "mlflow", "ray-head", "api"):
        assert not re.search(rf"(?<![\w.-]){re.escape(name)}:\d", text), name
    addresses = set(re.findall(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])", text))
    assert addresses <= {"127.0.0.1", "127.0.0.2"}, addresses


def test_the_loopback_stack_takes_every_port_from_a_variable(loopback_file: Path) -> None:
    wanted = variants.loopback_variables()
    used = {ref.name for ref in cf.references(loopback_file) if ref.name.startswith("LOOPBACK_")}
    assert used == set(wanted)
    ports = {name: str(40000 + i) for i, name in enumerate(sorted(wanted))}
    services = _loopback(loopback_file, ports)["services"]
    assert cf.environment(services["api"])["API_PORT"] == ports["LOOPBACK_API_PORT"]
    assert cf.environment(services["ray-worker"])["RAY_HEAD_ADDRESS"] == (
        f"127.0.0.2:{ports['LOOPBACK_RAY_GCS_PORT']}"
    )
    assert cf.environment(services["api"])["RAY_ADDRESS"] == (
        f"http://127.0.0.2:{ports['LOOPBACK_RAY_DASHBOARD_PORT']}"
    )
    mlflow_url = f"http://127.0.0.1:{ports['LOOPBACK_MLFLOW_PORT']}"
    for node in ("ray-head", "ray-worker", "api"):
        env = cf.environment(services[node])
        assert env["MLFLOW_TRACKING_URI"] == mlflow_url, node
        assert (
            f"@127.0.0.1:{ports['LOOPBACK_POSTGRES_PORT']}/optuna"
            in env["ROBUSTNESS_OPTUNA_STORAGE"]
        )
    assert cf.environment(services["postgres"])["PGPORT"] == ports["LOOPBACK_POSTGRES_PORT"]
    # The two Ray nodes share the host's ports: none of their fixed ports or ranges overlap.
    head, worker = services["ray-head"]["command"], services["ray-worker"]["command"]

    def port_args(command: list[str]) -> dict[str, int]:
        return {
            arg.split("=")[0]: int(arg.split("=")[1])
            for arg in command
            if arg.startswith("--") and "port" in arg
        }

    assert not set(port_args(head).values()) & set(port_args(worker).values())


def test_the_loopback_stack_keeps_everything_else(loopback_file: Path) -> None:
    main, loop = cf.load(MAIN, SECRETS)["services"], _loopback(loopback_file)["services"]
    for name in SERVICES:
        for key in ("image", "restart", "volumes", "depends_on", "shm_size", "ulimits"):
            assert loop[name].get(key) == main[name].get(key), (name, key)
        assert set(cf.environment(main[name])) <= set(cf.environment(loop[name])), name


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_accepts_the_loopback_file(loopback_file: Path) -> None:
    # Compose 1.29 refuses 'network_mode' beside 'networks', and ports with host networking.
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    result = subprocess.run(
        ["docker-compose", "--project-directory", str(REPO), "-f", str(loopback_file),
         "config", "-q"],
        env={**env, **SECRETS}, capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
