"""``robustness workloads`` and ``robustness optimizers``: what this installation can run.

  robustness workloads            # each workload: plugin, models, metric and direction, data
  robustness optimizers           # each optimizer: where it comes from, what it takes, packs
  robustness workloads --json     # the rows GET /workloads answers

A plugin that fails to import is listed as BROKEN with its error; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    for name, helptext in (
        ("workloads", "the workloads (datasets, models, metric) installed here"),
        ("optimizers", "the optimizers installed here"),
    ):
        parser = subparsers.add_parser(
            name,
            help=helptext,
            description=__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("--json", action="store_true", help="print the rows as JSON")
        if name == "workloads":
            parser.add_argument("--data-dir", help="datasets folder (default <home>/data)")
        parser.set_defaults(func=run_workloads if name == "workloads" else run_optimizers)


def run_workloads(args: argparse.Namespace) -> int:
    from studies.workloads import catalog

    rows = catalog.workload_rows(data_dir=args.data_dir)
    print(json.dumps(rows, indent=2) if args.json else catalog.workloads_text(rows))
    return 1 if any(row["error"] for row in rows) else 0


def run_optimizers(args: argparse.Namespace) -> int:
    from studies.workloads import catalog

    rows = catalog.optimizer_rows()
    print(json.dumps(rows, indent=2) if args.json else catalog.optimizers_text(rows))
    return 1 if any(row["error"] for row in rows) else 0
