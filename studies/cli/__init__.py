"""``robustness``: one command line for the whole project.

Each sub-command lives in its own module here and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` (a callable taking the parsed namespace and returning an exit code).
A sub-command imports what it runs when it runs (``run`` imports Ray only once there is
something to run), so ``robustness --help`` stays fast.

The top stage: may import every other stage of ``studies``; only ``service.cli`` imports it.
Admission (``studies.admission``) is checked here, where a study enters.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from studies.errors import RobustnessError

#: Sub-command modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "theory",
    "presets",
    "data",
    "run",
    "report",
    "importer",
    "catalog",
)


def build_parser(extra: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robustness",
        description="How sensitive is an optimizer to its learning rate and warmup? "
        "Reproduces the robustness study of RAdam (Liu et al. 2019).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in (*COMMANDS, *extra):
        module_name = name if "." in name else f"studies.cli.{name}"
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, *, extra: Sequence[str] = ()) -> int:
    args = build_parser(extra).parse_args(argv)
    try:
        code: int = args.func(args)
    except RobustnessError as exc:
        print(f"robustness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robustness: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
