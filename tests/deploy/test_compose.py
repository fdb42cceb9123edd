"""The compose files: valid against the Compose Specification, and what matters is in them.

No Docker engine runs here, so the files are read as compose reads them (YAML, then
interpolation; compose_files.py) and validated against the vendored compose-spec JSON schema.
Then each thing the deployment promises is checked: images and build contexts exist, GPU
reservations on the workers, healthchecks and healthy-dependency ordering, the shared storage
at the same path on head and workers, nothing but the API, the MLflow UI and the Ray dashboard
published, Ray token auth on every node, and no secret in any file.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any

import compose_files as cf
import pytest

REPO = cf.REPO
MAIN = REPO / "docker-compose.yml"
MULTIHOST = REPO / "docker" / "multihost.compose.yml"
WORKER = REPO / "docker" / "worker.compose.yml"
ENV_EXAMPLE = REPO / ".env.example"

SECRETS = ("API_TOKEN", "RAY_AUTH_TOKEN", "POSTGRES_PASSWORD")
# A filled .env, as a user would have it: the secrets and the NFS export.
FILLED_ENV = {
    "API_TOKEN": "api-token-sentinel",
    "RAY_AUTH_TOKEN": "ray-token-sentinel",
    "POSTGRES_PASSWORD": "pgpasswordsentinel",
    "NFS_SERVER": "nfs.example.internal",
    "NFS_EXPORT": "/srv/robustness",
}
PROJECT_IMAGE_SERVICES = ("ray-head", "ray-worker", "api")
PUBLISHED = {"api": 8000, "mlflow": 5000, "ray-head": 8265}


def _main(env: dict[str, str] | None = None) -> dict[str, Any]:
    return cf.load(MAIN, FILLED_ENV if env is None else env)


def _worker(env: dict[str, str] | None = None) -> dict[str, Any]:
    return cf.load(WORKER, FILLED_ENV if env is None else env)


def _multihost() -> dict[str, Any]:
    return cf.merge(_main(), cf.load(MULTIHOST, FILLED_ENV))


def _size_bytes(size: str | int) -> int:
    match = re.fullmatch(r"(\d+)\s*([kmg]?)b?", str(size).lower())
    assert match, f"unreadable size {size!r}"
    return int(match[1]) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[match[2]]


# --- valid compose files -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, doc",
    [
        ("docker-compose.yml", _main),
        ("docker/worker.compose.yml", _worker),
        ("docker-compose.yml + docker/multihost.compose.yml", _multihost),
        ("docker/multihost.compose.yml alone", lambda: cf.load(MULTIHOST, FILLED_ENV)),
    ],
)
def test_compose_files_follow_the_compose_specification(name: str, doc: Any) -> None:
    assert cf.validate(doc()) == [], name


def test_the_schema_catches_a_misspelt_key() -> None:
    # The validator is strict: a typo is an error, not an ignored key.
    doc = _main()
    doc["services"]["ray-worker"]["shmsize"] = "16gb"
    assert any("shmsize" in error for error in cf.validate(doc))


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [MAIN, WORKER, MULTIHOST], ids=lambda p: p.name)
def test_secrets_are_required_variables_never_defaults(path: Path) -> None:
    refs = [ref for ref in cf.references(path) if ref.name in SECRETS]
    assert refs or path == MULTIHOST
    for ref in refs:
        assert ref.op == ":?", (
            f"{path.name} {ref.where}: ${{{ref.name}}} must be ${{{ref.name}:?...}}"
        )


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_refuses_to_start_without_each_secret(secret: str) -> None:
    env = {key: value for key, value in FILLED_ENV.items() if key != secret}
    with pytest.raises(cf.MissingVariableError) as caught:
        _main(env)
    assert caught.value.name == secret
    with pytest.raises(cf.MissingVariableError):
        _main({**env, secret: ""})  # ":?" also refuses an empty value


@pytest.mark.parametrize("path", [MAIN, WORKER, MULTIHOST], ids=lambda p: p.name)
def test_no_literal_secret_in_the_files(path: Path) -> None:
    doc = cf.raw(path)
    for service_name, service in doc.get("services", {}).items():
        for key, value in cf.environment(service).items():
            if re.search(r"PASSWORD|TOKEN|SECRET|_KEY", key):
                assert "${" in value and ":?" in value, f"{service_name}.{key} has a literal value"
            for password in re.findall(r"://[^/:@\s]+:(\$\{[^}]*\}|[^@\s/]+)@", value):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", password), (
                    f"{service_name}.{key}: a URL with a literal password"
                )
    # With a filled .env, each secret lands only where it is referenced.
    text = path.read_text()
    for secret in SECRETS:
        assert FILLED_ENV[secret] not in text


def test_env_example_lists_the_secrets_empty_and_every_variable() -> None:
    text = ENV_EXAMPLE.read_text()
    for secret in SECRETS:
        assert re.search(rf"^{secret}=$", text, re.M), f"{secret}= (empty) missing"
    documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", text, re.M))
    used = {ref.name for path in (MAIN, WORKER, MULTIHOST) for ref in cf.references(path)}
    # $${RAY_HEAD_ADDRESS} in healthchecks is the container's variable, not compose's.
    assert used - documented == set()


def test_dockerignore_keeps_env_files_out_of_the_image() -> None:
    patterns = (REPO / ".dockerignore").read_text().split()
    assert ".env" in patterns and ".git" in patterns and ".robustness" in patterns


# --- images and build contexts ---------------------------------------------------------------


def _copy_sources(dockerfile: Path) -> list[str]:
    sources: list[str] = []
    for line in dockerfile.read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
            sources += [p for p in parts[1:-1] if not p.startswith("--")]
    return sources


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("path", [MAIN, WORKER], ids=lambda p: p.name)
def test_every_service_has_an_image_and_its_build_context_exists(path: Path) -> None:
    # Relative paths resolve from the project directory: the repository root for both files
    # (the worker file is used with --project-directory .).
    dockerignore = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for name, service in cf.load(path, FILLED_ENV)["services"].items():
        assert service.get("image") or service.get("build"), name
        build = service.get("build")
        if not build:
            continue
        context = REPO / build["context"]
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert context.is_dir(), f"{name}: no build context {context}"
        assert dockerfile.is_file(), f"{name}: no {dockerfile}"
        for source in _copy_sources(dockerfile):
            assert (context / source).exists(), (
                f"{name}: {dockerfile.name} copies a missing {source}"
            )
            if context == REPO:
                assert not _ignored(source, dockerignore), f"{name}: .dockerignore drops {source}"


def test_project_services_share_one_image() -> None:
    services = _main()["services"]
    images = {services[name]["image"] for name in PROJECT_IMAGE_SERVICES}
    builds = {repr(services[name]["build"]) for name in PROJECT_IMAGE_SERVICES}
    assert len(images) == 1 and len(builds) == 1
    assert _worker()["services"]["ray-worker"]["image"] == images.pop()


def test_images_pin_what_pyproject_pins() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = dict(dep.split("==", 1) for dep in project["dependencies"] if "==" in dep)
    python = re.search(r">=(3\.\d+)", project["requires-python"])
    assert python
    project_image = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(rf"^FROM python:{re.escape(python[1])}-", project_image, re.M)
    assert "pyproject.toml" in project_image  # dependencies installed from it, pins included
    mlflow_image = (REPO / "docker" / "mlflow.Dockerfile").read_text()
    assert f'"mlflow=={pins["mlflow"]}"' in mlflow_image
    assert "psycopg2" in mlflow_image
    assert re.search(rf"^FROM python:{re.escape(python[1])}-", mlflow_image, re.M)


# --- GPUs, healthchecks, ordering ------------------------------------------------------------


@pytest.mark.parametrize("doc", [_main, _worker], ids=["docker-compose.yml", "worker.compose.yml"])
def test_workers_reserve_the_gpus_and_a_large_shm(doc: Any) -> None:
    worker = doc()["services"]["ray-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    gpu = [d for d in devices if d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", [])]
    assert gpu, devices
    assert gpu[0].get("count") == "all" or gpu[0].get("device_ids")
    assert _size_bytes(worker["shm_size"]) >= 2**30


def test_workers_scale() -> None:
    worker = _main()["services"]["ray-worker"]
    # `--scale ray-worker=N` fails on a fixed container name or published port.
    for key in ("container_name", "hostname", "ports"):
        assert key not in worker


def test_healthchecks_and_healthy_ordering() -> None:
    services = _main()["services"]
    for name in ("postgres", "mlflow", "ray-head", "ray-worker", "api"):
        test = services[name].get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    expected = {
        "mlflow": {"postgres"},
        "ray-head": {"mlflow"},
        "ray-worker": {"ray-head"},
        "api": {"mlflow", "ray-head"},
    }
    for name, needs in expected.items():
        depends = services[name]["depends_on"]
        assert set(depends) == needs, name
        assert all(depends[dep]["condition"] == "service_healthy" for dep in needs), name
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])


# --- shared storage ----------------------------------------------------------------------------


def _mount_target(service: dict[str, Any], volume: str) -> str | None:
    for mount in service.get("volumes", []):
        if isinstance(mount, str) and mount.split(":")[0] == volume:
            return mount.split(":")[1]
        if isinstance(mount, dict) and mount.get("source") == volume:
            return str(mount["target"])
    return None


def test_shared_storage_is_the_same_path_on_head_and_every_worker() -> None:
    main, worker = _main(), _worker()
    nodes = [
        main["services"]["ray-head"],
        main["services"]["ray-worker"],
        worker["services"]["ray-worker"],
    ]
    targets = {_mount_target(node, "shared") for node in nodes}
    assert targets == {"/shared"}
    storages = {cf.environment(node)["ROBUSTNESS_STORAGE"] for node in nodes}
    assert storages == {"/shared/ray_results"}
    assert "shared" in main["volumes"]


def test_across_hosts_head_and_workers_mount_the_same_nfs_export() -> None:
    head_volume = _multihost()["volumes"]["shared"]
    worker_volume = _worker()["volumes"]["shared"]
    assert head_volume == worker_volume
    assert head_volume["driver_opts"]["type"] == "nfs"
    assert FILLED_ENV["NFS_SERVER"] in head_volume["driver_opts"]["o"]
    assert head_volume["driver_opts"]["device"] == f":{FILLED_ENV['NFS_EXPORT']}"


def test_across_hosts_workers_join_the_heads_overlay_network() -> None:
    head_net = _multihost()["networks"]["cluster"]
    worker_net = _worker()["networks"]["cluster"]
    assert head_net["driver"] == "overlay" and head_net["attachable"] is True
    assert worker_net["external"] is True and worker_net["name"] == head_net["name"]
    assert (
        cf.environment(_worker()["services"]["ray-worker"])["RAY_HEAD_ADDRESS"] == "ray-head:6379"
    )


# --- what is published ---------------------------------------------------------------------------


def _published(service: dict[str, Any]) -> list[tuple[str, int]]:
    ports = []
    for port in service.get("ports", []):
        host_ip, _host_port, target = str(port).rsplit(":", 2)
        ports.append((host_ip, int(target)))
    return ports


def test_only_the_api_mlflow_ui_and_ray_dashboard_are_published() -> None:
    services = _main()["services"]
    published = {name: _published(svc) for name, svc in services.items() if svc.get("ports")}
    assert {name: [t for _, t in ports] for name, ports in published.items()} == {
        name: [port] for name, port in PUBLISHED.items()
    }
    assert "ports" not in services["postgres"]
    # Loopback unless the user opts in (PUBLISH_ADDRESS).
    assert {ip for ports in published.values() for ip, _ in ports} == {"127.0.0.1"}
    exposed = _main({**FILLED_ENV, "PUBLISH_ADDRESS": "0.0.0.0"})["services"]
    assert _published(exposed["api"]) == [("0.0.0.0", 8000)]
    assert "ports" not in _worker()["services"]["ray-worker"]


# --- Ray and the API -------------------------------------------------------------------------


def test_ray_token_auth_on_every_node_and_the_api() -> None:
    nodes = [_main()["services"][name] for name in PROJECT_IMAGE_SERVICES]
    nodes.append(_worker()["services"]["ray-worker"])
    for node in nodes:
        env = cf.environment(node)
        assert env["RAY_AUTH_MODE"] == "token"
        assert env["RAY_AUTH_TOKEN"] == FILLED_ENV["RAY_AUTH_TOKEN"]


def test_api_runs_in_cluster_mode_with_the_service_settings_names() -> None:
    api = _main()["services"]["api"]
    env = cf.environment(api)
    assert env["RAY_ADDRESS"] == "http://ray-head:8265"  # the Jobs API
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["API_TOKEN"] == FILLED_ENV["API_TOKEN"]
    assert env["ROBUSTNESS_DATA_DIR"] == "/data"
    assert _mount_target(api, "./.robustness/data") == "/data"
    settings = pytest.importorskip("service.settings")
    names = {
        str(field.validation_alias or name).upper()
        for name, field in settings.Settings.model_fields.items()
    }
    for name in (
        "RAY_ADDRESS",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_UI_URL",
        "MLFLOW_UI",
        "API_TOKEN",
        "ROBUSTNESS_DATA_DIR",
    ):
        assert name in names, f"the service has no setting {name}"
    assert not set(env) & set(settings.RETIRED), "compose sets a name the service no longer reads"


def test_mlflow_reads_its_configuration_from_these_variables() -> None:
    cli = pytest.importorskip("mlflow.cli")
    envvars = {param.envvar for param in cli.server.params if getattr(param, "envvar", None)}
    from mlflow.environment_variables import MLFLOW_SERVER_ALLOWED_HOSTS

    mlflow = _main()["services"]["mlflow"]
    env = cf.environment(mlflow)
    for name in env:
        assert name in envvars or name == MLFLOW_SERVER_ALLOWED_HOSTS.name, name
    # The driver is named: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which
    # neither image installs (psycopg2-binary is the pinned driver).
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    for node in ("ray-head", "ray-worker", "api"):
        optuna = cf.environment(_main()["services"][node])["ROBUSTNESS_OPTUNA_STORAGE"]
        assert optuna.startswith("postgresql+psycopg2://"), node
    assert "--serve-artifacts" in mlflow["command"]
    allowed = env[MLFLOW_SERVER_ALLOWED_HOSTS.name].split(",")
    # The API and the Ray Jobs reach it as mlflow:5000; the healthcheck as localhost:5000.
    from mlflow.server.security_utils import is_allowed_host_header

    assert is_allowed_host_header(allowed, "mlflow:5000")
    assert is_allowed_host_header(allowed, "localhost:5000")
    assert not is_allowed_host_header(allowed, "evil.example:5000")


def test_head_and_workers_run_their_roles() -> None:
    services = _main()["services"]
    assert services["ray-head"]["command"] == ["ray-head"]
    assert services["ray-worker"]["command"] == ["ray-worker"]
    assert services["api"]["command"] == ["api"]
    assert cf.environment(services["ray-head"])["RAY_HEAD_NUM_CPUS"] == "0"
