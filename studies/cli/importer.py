"""``robustness import OUTDIR``: a results folder made outside the cluster, as a study.

OUTDIR is what ``scripts/figure6_gpu.sh`` (``python -m studies.offline.figure6``) writes: one
file per configuration under ``trials/``, ``run.json`` and ``throughput.json``. The whole
folder is checked first (malformed JSON, specs that differ between files, configurations
missing or twice, epochs missing: refused, naming the file, with nothing written); then the
study is created in MLflow like one the runner ran, with its summary and figures, and
``robustness report ID`` or the service show it.

  robustness import out/figure6
  robustness import out/figure6 --write-record docs/results/   # the committed record page
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from studies import paths


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import",
        help="record a results folder made outside the cluster (e.g. on a GPU) as a study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("outdir", type=Path, metavar="OUTDIR", help="the results folder")
    parser.add_argument(
        "--study-id", help="the new study's id (default: the run's own id, run.json's run_id)"
    )
    parser.add_argument(
        "--tracking-uri",
        "--mlflow-uri",
        dest="tracking_uri",
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or <home>/mlflow.db)",
    )
    parser.add_argument(
        "--out", type=Path, help="where the report files go (default <home>/reports/STUDY_ID)"
    )
    parser.add_argument(
        "--write-record",
        type=Path,
        metavar="DIR",
        help="also write DIR/figure6-<device>.md and the figures beside it",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from studies.analysis.report import format_table, load_summary, report_dir
    from studies.offline.importer import import_outdir

    tracking_uri = args.tracking_uri or paths.mlflow_uri()
    study, offline = import_outdir(
        args.outdir, tracking_uri=tracking_uri, study_id=args.study_id, report_dir=args.out
    )
    summary = load_summary(study.study_id, tracking_uri=tracking_uri)
    print(format_table(summary))
    if args.write_record is not None:
        from studies.offline.resultdoc import write_record

        written = write_record(
            summary,
            offline,
            study,
            report_dir=args.out or report_dir(study.study_id),
            out_dir=args.write_record,
        )
        print(f"\nWrote {', '.join(str(p) for p in written)}")
    print(
        json.dumps(
            {
                "study_id": study.study_id,
                "status": study.status,
                "tracking_uri": tracking_uri,
                "experiment_id": study.experiment_id,
                "run_id": study.run_id,
                "trials": len(offline.trials),
            }
        )
    )
    return 0 if study.status == "succeeded" else 1
