"""The house rules that every module keeps (docs/ARCHITECTURE.md): none of radam/, studies/
and service/ is over 400 lines (one that grows past it is split where its seams are, not by
line count), and every package's ``__init__`` says what it owns and what it may import. The
import contracts themselves are import-linter's (``lint-imports``, pyproject.toml)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("radam", "studies", "service")
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def test_the_packages_are_where_the_rule_looks() -> None:
    # a rule over no files passes for nothing: the packages are there, with their modules
    assert len(_modules()) > 50


def test_no_module_is_over_400_lines() -> None:
    sizes = {p.relative_to(REPO): len(p.read_text().splitlines()) for p in _modules()}
    over = {str(path): n for path, n in sorted(sizes.items()) if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines (split them where their seams are): {over}"


@pytest.mark.parametrize(
    "init",
    sorted(
        str(p.relative_to(REPO))
        for package in PACKAGES
        for p in (REPO / package).rglob("__init__.py")
    ),
)
def test_every_package_says_what_it_owns(init: str) -> None:
    docstring = ast.get_docstring(ast.parse((REPO / init).read_text()))
    assert docstring, f"{init} has no docstring: say what the package owns and may import"
    assert len(docstring.split()) >= 8, f"{init}'s docstring is too short to state a contract"
