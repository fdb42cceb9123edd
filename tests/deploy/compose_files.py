"""Read compose files the way Docker Compose does, without Docker: YAML, then interpolation.

No Docker engine runs where the tests run, so the files are checked here instead:

- ``load(path, env)`` parses YAML (merge keys ``<<:`` included) and interpolates every string
  value with compose's syntax (then, as compose does, turns the integer fields that may hold
  a variable, ``ulimits``, back into integers): ``$$`` (a literal ``$``), ``$VAR``, ``${VAR}``,
  ``${VAR:-default}`` / ``${VAR-default}``, ``${VAR:?error}`` / ``${VAR?error}`` (required:
  raises ``MissingVariableError``, as compose refuses to start), ``${VAR:+alt}`` /
  ``${VAR+alt}``. Like compose, keys and comments are not interpolated. Nested references
  inside a default are not supported (our files have none; ``UnsupportedSyntaxError``).
- ``references(path)`` lists every ``${...}`` in the string values, with its operator, so a
  test can say "secrets are required variables, never defaults".
- ``validate(doc)`` checks an interpolated document against the Compose Specification's JSON
  schema vendored next to this file (compose-spec.json; see compose-spec.NOTICE.md).
- ``merge(base, override)`` merges ``-f a.yml -f b.yml`` for mappings (an override's keys win,
  recursively). Compose's special rules for sequences (``ports`` appended, ...) are not
  modelled: our override file only touches mappings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCHEMA_PATH = HERE / "compose-spec.json"

# $$ | ${...} | $NAME, as compose-go's template package reads them.
_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_BRACED = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S
)


class MissingVariableError(KeyError):
    """A ``${VAR:?err}`` / ``${VAR?err}`` whose variable is unset (or empty, for ``:?``)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"required variable {name} is missing a value: {message}")
        self.name = name


class UnsupportedSyntaxError(ValueError):
    """An interpolation this reader does not model (so a test cannot pass by accident)."""


@dataclass(frozen=True)
class Reference:
    name: str
    op: str | None  # None, ":-", "-", ":?", "?", ":+", "+"
    arg: str | None
    where: str  # dotted path of the value, for messages

    @property
    def required(self) -> bool:
        return self.op in (":?", "?")

    @property
    def has_default(self) -> bool:
        return self.op in (":-", "-")


def _substitute(text: str, env: Mapping[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        braced = _BRACED.match(match["braced"])
        if braced is None:
            raise UnsupportedSyntaxError(f"{where}: cannot read ${{{match['braced']}}}")
        name, op, arg = braced["name"], braced["op"], braced["arg"]
        if arg is not None and "$" in arg:
            raise UnsupportedSyntaxError(f"{where}: nested reference in ${{{match['braced']}}}")
        value = env.get(name)
        set_ = value is not None
        nonempty = bool(value)
        if op is None:
            return value or ""
        if op == ":-":
            return value if nonempty else arg  # type: ignore[return-value]
        if op == "-":
            return value if set_ else arg  # type: ignore[return-value]
        if op in (":?", "?"):
            if (op == ":?" and not nonempty) or (op == "?" and not set_):
                raise MissingVariableError(name, arg or "")
            return value  # type: ignore[return-value]
        if op == ":+":
            return arg if nonempty else ""  # type: ignore[return-value]
        return arg if set_ else ""  # type: ignore[return-value]  # "+"

    return _TOKEN.sub(replace, text)


def _walk(node: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(node, dict):
        return {
            key: _walk(value, env, f"{where}.{key}" if where else str(key))
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_walk(item, env, f"{where}[{i}]") for i, item in enumerate(node)]
    if isinstance(node, str):
        return _substitute(node, env, where)
    return node


def raw(path: Path) -> dict[str, Any]:
    """The parsed YAML, not interpolated."""
    with path.open() as handle:
        doc = yaml.safe_load(handle)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a mapping")
    return doc


def _cast_integers(doc: dict[str, Any]) -> dict[str, Any]:
    """What compose casts after interpolation (compose/config/interpolation.py): a service's
    ``ulimits`` values and their ``soft``/``hard``. A value that is no integer stays a string
    (the schema then says so)."""

    def to_int(value: Any) -> Any:
        return int(value) if isinstance(value, str) and re.fullmatch(r"-?\d+", value) else value

    for service in (doc.get("services") or {}).values():
        if not isinstance(service, dict) or not isinstance(service.get("ulimits"), dict):
            continue
        for name, limit in service["ulimits"].items():
            if isinstance(limit, dict):
                service["ulimits"][name] = {key: to_int(value) for key, value in limit.items()}
            else:
                service["ulimits"][name] = to_int(limit)
    return doc


def load(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The parsed, interpolated document (extension fields ``x-*`` included)."""
    return _cast_integers(_walk(raw(path), env, ""))


def references(path: Path) -> list[Reference]:
    found: list[Reference] = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                visit(value, f"{where}.{key}" if where else str(key))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                visit(item, f"{where}[{i}]")
        elif isinstance(node, str):
            for match in _TOKEN.finditer(node):
                if match["named"]:
                    found.append(Reference(match["named"], None, None, where))
                elif match["braced"] is not None:
                    braced = _BRACED.match(match["braced"])
                    if braced is None:
                        raise UnsupportedSyntaxError(f"{where}: ${{{match['braced']}}}")
                    found.append(Reference(braced["name"], braced["op"], braced["arg"], where))

    visit(raw(path), "")
    return found


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def validate(doc: Mapping[str, Any]) -> list[str]:
    """Schema errors, as readable lines (empty: valid)."""
    errors = sorted(_validator().iter_errors(dict(doc)), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a mapping, whichever form the file uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: value for key, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}
