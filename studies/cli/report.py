"""``robustness report STUDY_ID``: a study's robustness summary, as a table, JSON or CSV.

Reads the study's trials out of MLflow (finished or still running: a running study's report
says how many trials are in), prints the summary (optimizers as rows, learning rates as
columns, the verdict under it) and writes ``summary.json``, ``trials.csv``, ``figure6.png``/
``.svg``, ``lr_sensitivity.png``, ``expected_max.png``/``.svg`` and, for warmup studies,
``warmup.png`` to ``--out``. ``--format json`` carries each optimizer's ``expected_max_pct``
and each comparison's permutation test (p-value, interval, seeds, relabellings).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from studies import paths
from studies.analysis.report import build_report, format_cells_csv, format_table, report_dir

FORMATS: tuple[str, ...] = ("table", "json", "csv")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="print a study's robustness summary and write its figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("study_id", metavar="STUDY_ID", help="the study's id")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default <home>/reports/STUDY_ID)"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table: terminal table; json: the whole summary; csv: one row per grid cell",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or <home>/mlflow.db)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out: Path = args.out or report_dir(args.study_id)
    summary, written = build_report(
        args.study_id, tracking_uri=args.tracking_uri or paths.mlflow_uri(), out_dir=out
    )
    if args.format == "json":
        print(json.dumps(summary.to_dict(), indent=2))
    elif args.format == "csv":
        print(format_cells_csv(summary), end="")
    else:
        print(format_table(summary))
        print(f"\nWrote {', '.join(p.name for p in written)} to {out}")
    return 0
