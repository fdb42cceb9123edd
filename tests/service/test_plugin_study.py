"""The example plugin end to end: pip-installed into this environment (removed afterwards), a
real uvicorn service with its own Ray head and MLflow on SQLite, discovery over HTTP, a study
on the plugin's workload and optimizer POSTed with no code in the request, its summary and
figures; beside it a broken plugin (an entry point whose module does not import) that is listed
with its error and refused with a 422, while the service goes on.

Kept cheap: 178 wines, 3 epochs, 4 trials of a 13-32-3 MLP (seconds of training).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import start_service, wait_for

from service.processes.service_process import ServiceProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]  # the repository
PLUGIN = ROOT / "examples" / "wine_workload"
DIST = "robustness-wine"
TOKEN = "plugin-token-23"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", *args], check=True, timeout=300)


@pytest.fixture(scope="module")
def installed() -> Iterator[None]:
    _pip("install", "--no-deps", "--no-build-isolation", "-e", str(PLUGIN))
    try:
        yield
    finally:
        _pip("uninstall", "-y", DIST)


@pytest.fixture(scope="module")
def broken_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A distribution on PYTHONPATH that registers ``shaky`` from a module that fails on
    import: what a plugin with a missing dependency looks like."""
    root = tmp_path_factory.mktemp("broken-plugin")
    info = root / "shaky_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shaky-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[robustness.workloads]\nshaky = shaky_plugin:workload\n"
    )
    (root / "shaky_plugin.py").write_text("import a_dependency_that_is_not_installed\n")
    return root


@pytest.fixture(scope="module")
def service(home: Path, installed: None, broken_plugin: Path) -> Iterator[ServiceProcess]:
    process = start_service(
        home,
        API_TOKEN=TOKEN,
        PYTHONPATH=str(broken_plugin),
        # the fuzzer's valid specs: at most 4 trials, one study at a time
        ROBUSTNESS_MAX_TRIALS="4",
        ROBUSTNESS_MAX_ACTIVE_STUDIES="1",
    )
    try:
        yield process
    finally:
        process.stop()


def wine_spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "wine-plugin",
        "dataset": "wine",
        "model": "wine_mlp",
        "optimizers": ["radam", "sgd_nesterov"],
        "learning_rates": [0.01, 0.1],
        "seeds": [0],
        "epochs": 3,
        "batch_size": 16,
    }
    return spec | changes


def test_discovery_lists_the_plugin_and_the_broken_one(client: httpx.Client) -> None:
    workloads = {w["name"]: w for w in client.get("/workloads").json()}
    assert list(workloads)[:3] == ["cifar10", "fashion_mnist", "digits"]
    wine = workloads["wine"]
    assert wine["plugin"] == "robustness-wine 0.1.0" and wine["error"] is None
    assert wine["models"] == ["wine_mlp", "wine_linear"]
    assert wine["metric"]["name"] == "test_acc" and wine["metric"]["direction"] == "higher"
    assert wine["data"]["found"] is True
    shaky = workloads["shaky"]
    assert shaky["plugin"] == "shaky-plugin 0.1" and shaky["metric"] is None
    assert "a_dependency_that_is_not_installed" in shaky["error"]
    optimizers = {o["name"]: o for o in client.get("/optimizers").json()}
    assert optimizers["sgd_nesterov"]["source"] == "robustness-wine 0.1.0"
    assert optimizers["sgd_nesterov"]["parameters"] == ["lr", "momentum", "weight_decay"]
    assert optimizers["nadam"]["source"] == "torch.optim" and not optimizers["nadam"]["packable"]
    assert optimizers["radam"]["packable"]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"dataset": "shaky"}, "dataset", "a_dependency_that_is_not_installed"),
        (
            {"dataset": "iris"},
            "dataset",
            "installed: cifar10, fashion_mnist, digits, shakespeare, shaky, wine",
        ),
        ({"model": "resnet20"}, "model", "installed: wine_mlp, wine_linear"),
        ({"optimizers": ["radam", "lion"]}, "optimizers", "sgd_nesterov"),
        ({"betas": [0.9, 0.99]}, "betas", "'sgd_nesterov' takes no betas"),
    ],
)
def test_bad_names_are_422s_that_name_the_choices(
    client: httpx.Client, changes: dict[str, Any], field: str, words: str
) -> None:
    response = client.post("/studies", json=wine_spec(**changes), headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert words in response.json()["detail"]


def test_a_study_on_the_plugin_runs_end_to_end(client: httpx.Client) -> None:
    response = client.post("/studies", json=wine_spec(), headers=AUTH)
    assert response.status_code == 202, response.text
    study = wait_for(client, response.json()["id"], timeout_s=300)
    assert study["status"] == "succeeded", study
    summary = client.get(f"/studies/{study['id']}/summary").json()
    assert summary["metric"]["name"] == "test_acc" and summary["metric"]["failed_value"] == 1 / 3
    assert {o["optimizer"] for o in summary["optimizers"]} == {"radam", "sgd_nesterov"}
    best = max(o["best_acc_pct"] for o in summary["optimizers"])
    assert best > 80.0  # three epochs separate three cultivars (chance: 33%)
    trials = client.get(f"/studies/{study['id']}/trials").json()
    assert len(trials) == 4 and all(t["status"] == "finished" for t in trials)
    figure = client.get(f"/studies/{study['id']}/figures/figure6.png")
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
    csv_head = client.get(
        f"/studies/{study['id']}/trials", params={"format": "csv"}
    ).text.splitlines()[0]
    assert "final_acc_pct" in csv_head  # an accuracy in percent, as the built-ins'
    assert client.get("/healthz").status_code == 200  # the broken plugin stopped nothing


def test_the_openapi_document_lists_what_is_installed(client: httpx.Client) -> None:
    components = client.get("/openapi.json").json()["components"]["schemas"]
    spec = components["StudySpec"]["properties"]
    assert spec["dataset"]["enum"] == [
        "cifar10",
        "fashion_mnist",
        "digits",
        "shakespeare",
        "wine",
    ]  # not shaky
    assert {"wine_mlp", "resnet20"} <= set(spec["model"]["enum"])
    assert {"radam", "nadam", "sgd_nesterov"} <= set(spec["optimizers"]["items"]["enum"])
    assert "figure6-quick" in components["StudyCreate"]["properties"]["preset"]["enum"]


def test_a_405_allows_every_method_of_the_path_and_a_replay_is_documented(
    client: httpx.Client,
) -> None:
    response = client.put("/studies", headers=AUTH)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert client.delete("/workloads").headers["Allow"] == "GET"
    post = client.get("/openapi.json").json()["paths"]["/studies"]["post"]["responses"]
    assert {"200", "202", "422"} <= set(post)


def test_schemathesis_finds_no_fault_with_every_check_on(service: ServiceProcess) -> None:
    """The OpenAPI document tells the truth: schemathesis (loopback, the token, a fixed seed,
    10 examples per operation; ~900 cases in seconds) with ``--checks all``. Last in the
    module: a study it gets accepted runs until the service stops."""
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [
            str(st),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{service.url}/openapi.json",
            "--checks",
            "all",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            "--max-examples",
            "10",
            "--workers",
            "1",
            "--seed",
            "23",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
