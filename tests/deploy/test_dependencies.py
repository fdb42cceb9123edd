"""What the image installs is what the code imports: project.dependencies, read statically.

The image installs ``project.dependencies`` and nothing else (docker/Dockerfile), so a module
that radam/, studies/ or service/ imports at run time from a distribution named only in the
``dev`` extra (or only pulled in by another package) is a crash in the container (it was:
httpx, imported by service/cli_quickstart.py, crash-looped the api container). Every import in
the three packages, function-level ones included, is mapped to the distribution that provides
it here (``importlib.metadata.packages_distributions``) and must be a direct dependency. The
compose test then imports every module inside the built image and runs ``pip check`` there.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("radam", "studies", "service")
# Distributions that provide a module under another distribution's name here (mlflow's
# modules are shared by mlflow, mlflow-skinny and mlflow-tracing; one of them is enough).
_ALIASES = {"mlflow-skinny": "mlflow", "mlflow-tracing": "mlflow"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dependencies() -> dict[str, set[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {_normal(re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0]) for req in requirements}

    return {
        "runtime": names(project["dependencies"]),
        **{extra: names(reqs) for extra, reqs in project["optional-dependencies"].items()},
    }


def _imports() -> dict[str, set[str]]:
    """Top-level module -> the files that import it, for every absolute import in the code."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in PACKAGES or top in sys.stdlib_module_names or top == "__future__":
                        continue
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_every_runtime_import_is_a_direct_dependency() -> None:
    providers = metadata.packages_distributions()
    runtime = _dependencies()["runtime"]
    missing = {}
    for module, files in sorted(_imports().items()):
        distributions = {_normal(_ALIASES.get(d, d)) for d in providers.get(module, [])}
        if not distributions:
            missing[module] = f"no installed distribution provides it ({sorted(files)[0]})"
        elif not distributions & runtime:
            missing[module] = (
                f"{sorted(distributions)} not in project.dependencies ({sorted(files)[0]})"
            )
    assert missing == {}


def test_the_check_sees_a_dev_only_import() -> None:
    # pytest is in the dev extra only: the same mapping must call it missing.
    providers = metadata.packages_distributions()
    deps = _dependencies()
    assert {_normal(d) for d in providers["pytest"]} & deps["dev"]
    assert not {_normal(d) for d in providers["pytest"]} & deps["runtime"]
    if "httpx" in providers:  # the one that crashed the api container: now a run-time dep
        assert "httpx" in deps["runtime"]


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "mlflow.Dockerfile"])
def test_no_dockerfile_needs_a_registry_to_parse(dockerfile: str) -> None:
    # `# syntax=docker/dockerfile:1` makes BuildKit pull its frontend from Docker Hub, so an
    # air-gapped build fails (the legacy builder ignores the line).
    text = (REPO / "docker" / dockerfile).read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I)
    for standin in (REPO / "docker" / "standin").glob("*.Dockerfile"):
        assert not re.search(r"^#\s*syntax\s*=", standin.read_text(), re.M | re.I), standin
