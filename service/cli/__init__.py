"""``robustness`` with the service's sub-commands added: ``serve`` (``serve``), ``quickstart``
(``quickstart``: the main job, ``make run``) and ``reconcile`` (``reconcile``).

The console script points here (``python -m service.cli`` alike): ``studies`` must not import
``service``, so the service registers its commands through ``studies.cli.main``'s ``extra``.
"""

from __future__ import annotations

from collections.abc import Sequence

from studies.cli import main as studies_main

SERVICE_COMMANDS: tuple[str, ...] = (
    "service.cli.serve",
    "service.cli.quickstart",
    "service.cli.reconcile",
)


def main(argv: Sequence[str] | None = None) -> int:
    return studies_main(argv, extra=SERVICE_COMMANDS)
