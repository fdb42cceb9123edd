"""The shell scripts that ship: the image's entrypoint, Postgres' init script, the GPU smoke,
the compose test's engine and base images, and the stand-in Postgres image's entrypoint.

The entrypoint is run for real with ``ray`` and ``robustness`` replaced by recorders on PATH
(they are outside the thing under test: what matters is the command line each role builds, the
token check and the environment it hands on). The smoke script's study is validated through the
real ``robustness run --dry-run``. shellcheck and a compose implementation, where installed,
check the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import compose_files as cf
import pytest

REPO = cf.REPO
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
SCRIPTS = [
    ENTRYPOINT,
    REPO / "docker" / "postgres" / "10-optuna.sh",
    REPO / "scripts" / "gpu_smoke.sh",
    REPO / "scripts" / "figure6_gpu.sh",
    REPO / "scripts" / "private_dockerd.sh",
    REPO / "scripts" / "docker_base_images.sh",
    REPO / "scripts" / "test_deps.sh",
    REPO / "docker" / "standin" / "postgres-entrypoint.sh",
]
RECORDER = """#!/bin/bash
python3 -c 'import json, os, sys; print(json.dumps({"argv": sys.argv[1:], "env": dict(os.environ)}))' "$@" >> "$RECORD"
"""


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_are_executable(script: Path) -> None:
    assert os.access(script, os.X_OK), f"{script} is not executable"
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.skipif(
    shutil.which("shellcheck") is None,
    reason="shellcheck not installed (apt-get install shellcheck)",
)
def test_scripts_pass_shellcheck() -> None:
    result = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def _entrypoint(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("ray", "robustness"):
        (bin_dir / name).write_text(RECORDER)
        (bin_dir / name).chmod(0o755)
    record = tmp_path / "record.jsonl"
    base = {
        "PATH": f"{bin_dir}:/usr/bin:/bin:/usr/sbin:/sbin",
        "RECORD": str(record),
        "ROBUSTNESS_HOME": str(tmp_path / "home"),
        "ROBUSTNESS_STORAGE": str(tmp_path / "shared" / "ray_results"),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": "ray-token-sentinel",
        # Root here drops to root (the image's user `robustness` does not exist here): the
        # privilege-dropping path still runs.
        "ROBUSTNESS_RUN_AS": "root",
    }
    result = subprocess.run(
        ["bash", str(ENTRYPOINT), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = (
        [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    )
    return result, calls


def test_head_runs_no_trials_and_keeps_the_environment(tmp_path: Path) -> None:
    result, calls = _entrypoint(tmp_path, "ray-head")
    assert result.returncode == 0, result.stderr
    (call,) = calls
    assert call["argv"][:2] == ["start", "--head"]
    for flag in (
        "--port=6379",
        "--num-cpus=0",
        "--num-gpus=0",
        "--dashboard-host=0.0.0.0",
        "--dashboard-port=8265",
        "--block",
    ):
        assert flag in call["argv"]
    assert call["env"]["RAY_AUTH_TOKEN"] == "ray-token-sentinel"  # setpriv kept the env
    assert (tmp_path / "shared" / "ray_results").is_dir() and (tmp_path / "home").is_dir()


def test_head_listens_where_it_is_told(tmp_path: Path) -> None:
    # The host-network variant (scripts/compose_variants.py loopback) moves the listeners.
    env = {
        "RAY_GCS_PORT": "26379",
        "RAY_DASHBOARD_HOST": "127.0.0.2",
        "RAY_DASHBOARD_LISTEN_PORT": "28265",
    }
    _, (call,) = _entrypoint(tmp_path, "ray-head", "--node-ip-address=127.0.0.2", env=env)
    argv = call["argv"]
    for flag in ("--port=26379", "--dashboard-host=127.0.0.2", "--dashboard-port=28265"):
        assert flag in argv
    assert argv[-1] == "--node-ip-address=127.0.0.2"  # a role's arguments go to its command
    assert not any(a in argv for a in ("--port=6379", "--dashboard-host=0.0.0.0"))


def test_head_can_offer_cpus(tmp_path: Path) -> None:
    _, (call,) = _entrypoint(tmp_path, "ray-head", env={"RAY_HEAD_NUM_CPUS": "4"})
    assert "--num-cpus=4" in call["argv"]


def test_worker_joins_the_head_with_what_it_is_given(tmp_path: Path) -> None:
    _, (call,) = _entrypoint(
        tmp_path, "ray-worker", env={"RAY_WORKER_NUM_GPUS": "", "RAY_WORKER_NUM_CPUS": ""}
    )
    assert call["argv"][0] == "start" and "--head" not in call["argv"]
    assert "--address=ray-head:6379" in call["argv"] and "--block" in call["argv"]
    assert not any(arg.startswith(("--num-gpus", "--num-cpus")) for arg in call["argv"])
    _, calls = _entrypoint(
        tmp_path,
        "ray-worker",
        env={
            "RAY_HEAD_ADDRESS": "10.1.2.3:6379",
            "RAY_WORKER_NUM_GPUS": "2",
            "RAY_WORKER_NUM_CPUS": "8",
        },
    )
    argv = calls[-1]["argv"]
    assert "--address=10.1.2.3:6379" in argv and "--num-gpus=2" in argv and "--num-cpus=8" in argv


@pytest.mark.parametrize("role", ["ray-head", "ray-worker"])
def test_ray_roles_refuse_to_start_without_a_token(tmp_path: Path, role: str) -> None:
    result, calls = _entrypoint(tmp_path, role, env={"RAY_AUTH_TOKEN": ""})
    assert result.returncode == 64
    assert "RAY_AUTH_TOKEN" in result.stderr
    assert calls == []


def test_api_serves_on_all_interfaces(tmp_path: Path) -> None:
    _, (call,) = _entrypoint(tmp_path, "api")
    assert call["argv"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    _, calls = _entrypoint(tmp_path)  # the image's default command is the api
    assert calls[-1]["argv"][0] == "serve"
    _, calls = _entrypoint(tmp_path, "api", env={"API_HOST": "127.0.0.1", "API_PORT": "28000"})
    assert calls[-1]["argv"] == ["serve", "--host", "127.0.0.1", "--port", "28000"]


def test_other_commands_run_as_given(tmp_path: Path) -> None:
    _, (call,) = _entrypoint(tmp_path, "robustness", "run", "figure6", "--dry-run")
    assert call["argv"] == ["run", "figure6", "--dry-run"]
    assert call["env"]["HOME"] == "/home/root"


def test_gpu_smoke_study_is_valid() -> None:
    # The overrides must make a valid figure6 study (e.g. the paper's lr milestones at epochs
    # 81 and 122 must go for a 2-epoch run); --dry-run validates it without a GPU.
    robustness = Path(sys.executable).parent / "robustness"
    if not robustness.exists():
        pytest.skip("the robustness console script is not installed in this environment")
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_smoke.sh")],
        env={
            **os.environ,
            "SMOKE_DRY_RUN": "1",
            "ROBUSTNESS": str(robustness),
            "TRAIN_SUBSET": "5000",
        },
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "figure6, 12 trials x 2 epochs x 5000 images, 0.25 GPU" in result.stdout


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(
    _compose_command() is None, reason="no compose implementation (docker compose / docker-compose)"
)
@pytest.mark.parametrize(
    "files",
    [
        ["docker-compose.yml"],
        ["docker-compose.yml", "docker/multihost.compose.yml"],
        ["docker/worker.compose.yml"],
        ["docker-compose.cpu.yml"],
    ],
    ids=["main", "multihost", "worker", "cpu"],
)
def test_a_compose_implementation_accepts_the_files(files: list[str]) -> None:
    command = _compose_command()
    assert command
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("API_TOKEN", "RAY_AUTH_TOKEN", "POSTGRES_PASSWORD")
    }
    filled = {
        **env,
        "API_TOKEN": "a",
        "RAY_AUTH_TOKEN": "b",
        "POSTGRES_PASSWORD": "c",
        "NFS_SERVER": "10.0.0.5",
        "NFS_EXPORT": "/srv/x",
    }
    args = [*command, "--project-directory", str(REPO)]
    for name in files:
        args += ["-f", str(REPO / name)]
    ok = subprocess.run(
        [*args, "config", "-q"], env=filled, capture_output=True, text=True, cwd=REPO
    )
    assert ok.returncode == 0, ok.stderr
    if files != ["docker-compose.yml"]:
        return
    refused = subprocess.run(
        [*args, "config", "-q"],
        env={**filled, "API_TOKEN": ""},
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert refused.returncode != 0 and "API_TOKEN" in refused.stderr
