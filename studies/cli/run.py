"""``robustness run [PRESET | SPEC.json] [--set KEY=VALUE ...]``: run a study to its end.

On the embedded default (a local Ray started for the run, MLflow in SQLite under the
project's home, ``.robustness/``) or on a cluster (``--ray-address``, ``--mlflow-uri``). Shows
a live progress line (trials done / running / failed / diverged, best so far) and, at the end,
the study id and where its MLflow records are.

  robustness run                                   # the default preset, figure6-quick
  robustness run figure6 --set resources_per_trial.gpu=0.5
  robustness run my_spec.json --set epochs=2 --set learning_rates=[0.1,0.01]
  robustness run --study-id ID                     # a study created elsewhere (the service)
  robustness run --study-id ID --resume            # continue an interrupted study

The study's dataset is checked before Ray starts: a new study fetches it if it is missing
(``robustness data fetch``'s resolution, with torchvision's download but no system package),
and refuses with how to get it if that fails; a study created elsewhere (the service's Ray Job,
the driver) is failed at once with that message, not trial by trial.

Exit status: 0 succeeded, 1 failed, 130 interrupted (resumable), 2 invalid input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from studies import paths
from studies.admission import check_trials
from studies.errors import DatasetNotFoundError, SpecError
from studies.presets import DEFAULT_PRESET, PRESETS, apply_overrides, get_preset, parse_override
from studies.results import StudyRecord
from studies.spec import StudySpec
from studies.spec_parts import DATASETS
from studies.workloads import registry, sources


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a study (a preset or a spec file) on Ray Tune, recorded in MLflow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "target",
        nargs="?",
        metavar="PRESET|SPEC.json",
        help=f"a preset ({', '.join(PRESETS)}) or a spec file; default {DEFAULT_PRESET}",
    )
    add_override_option(parser)
    parser.add_argument("--study-id", help="run this study, already created in MLflow")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted study (with --study-id)"
    )
    parser.add_argument(
        "--ray-address", help="a Ray cluster to run on (default: start a local Ray)"
    )
    parser.add_argument(
        "--mlflow-uri",
        "--tracking-uri",
        dest="tracking_uri",
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or <home>/mlflow.db)",
    )
    parser.add_argument(
        "--storage", help="Ray Tune storage path every node can reach (default <home>/ray_results)"
    )
    parser.add_argument("--data-dir", help="datasets folder (default <home>/data)")
    parser.add_argument("--max-trials", type=int, help="refuse specs with more trials than this")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the validated spec and its size; run nothing"
    )
    parser.set_defaults(func=run)


def add_override_option(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable), read by ``presets.parse_override``; shared with
    ``robustness quickstart``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field (dotted key, JSON value); repeatable",
    )


def load_target(target: str | None, overrides: list[str], *, max_trials: int | None) -> StudySpec:
    """A preset name or a spec file, with ``--set`` overrides applied: parsed once, then
    admitted (the trial limit: ``--max-trials``, else the environment's)."""
    name = target or DEFAULT_PRESET
    if name in PRESETS:
        spec = get_preset(name)
    else:
        path = Path(name)
        if not path.is_file():
            raise SpecError(
                f"{name!r} is neither a preset ({', '.join(PRESETS)}) nor a spec file",
                field="target",
            )
        spec = StudySpec.parse(path.read_text())
    if overrides:
        spec = apply_overrides(spec, dict(parse_override(text) for text in overrides))
    return registry.admit(check_trials(spec, limit=max_trials))


class ProgressLine:
    """One live line on a terminal (rewritten in place); plain lines when the counts change
    otherwise (logs, CI, a Ray Job's output)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty()
        self.started = time.monotonic()
        self.last = ""

    def __call__(self, progress: Any) -> None:
        best = (
            f"best {100 * progress.best_acc:.2f}% ({progress.best_trial})"
            if progress.best_acc is not None
            else "best -"
        )
        elapsed = time.monotonic() - self.started
        counts = (
            f"[{progress.done}/{progress.total}] running {progress.running}  "
            f"finished {progress.finished}  diverged {progress.diverged}  "
            f"failed {progress.failed}  {best}"
        )
        if counts == self.last and not progress.interrupted:
            return
        self.last = counts
        line = f"{counts}  {elapsed:5.0f}s"
        if self.live:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live and self.last:
            self.stream.write("\n")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    tracking_uri = args.tracking_uri or paths.mlflow_uri()
    if args.study_id is not None and (args.target or args.overrides):
        raise SpecError("--study-id runs a study as created; give no spec or --set", field="--set")
    if args.resume and args.study_id is None:
        raise SpecError("--resume continues a study: give its --study-id", field="--resume")
    spec = None
    if args.study_id is None:
        spec = load_target(args.target, args.overrides, max_trials=args.max_trials)
        if args.dry_run:
            print(spec.to_json())
            print(f"{spec.num_trials} trials", file=sys.stderr)
            return 0
        print(f"study {spec.name}: {spec.num_trials} trials", file=sys.stderr)
        # a study that cannot run is refused before Ray starts or anything is recorded
        if spec.dataset in DATASETS:
            sources.fetch(spec.dataset, data_dir=args.data_dir, install_package=False, say=_say)
        else:
            registry.fetch_data(spec.dataset, data_dir=args.data_dir)
    else:
        # parsed once here, and handed on to the runner (a spec is parsed once per process)
        spec = _driver_spec(args.study_id, tracking_uri=tracking_uri, data_dir=args.data_dir)
        if spec is None:
            return 1

    from studies.runner import driver  # Ray and torch: only once there is something to run

    line = ProgressLine()
    try:
        if args.study_id is not None:
            record = driver.run_study(
                args.study_id,
                spec=spec,
                tracking_uri=tracking_uri,
                ray_address=args.ray_address,
                storage_path=args.storage,
                resume=args.resume,
                progress=line,
                data_dir=args.data_dir,
            )
        else:
            record = driver.run_spec(
                spec,
                tracking_uri=tracking_uri,
                ray_address=args.ray_address,
                storage_path=args.storage,
                progress=line,
                data_dir=args.data_dir,
            )
    finally:
        line.close()
    print_outcome(record, tracking_uri=tracking_uri)
    return {"succeeded": 0, "cancelled": 130}.get(record.status, 1)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _driver_spec(study_id: str, *, tracking_uri: str, data_dir: str | None) -> StudySpec | None:
    """The spec of a study created elsewhere (the service's Ray job, a resubmission), once its
    dataset is found here; else None, and the study fails once, before any trial starts, with
    the message ``robustness data status`` gives."""
    from studies import tracking

    store = tracking.store_for(tracking_uri)
    spec = StudySpec.parse(store.load_spec(study_id))  # admitted when it was created
    try:
        registry.require_data(spec.dataset, data_dir=data_dir)
    except DatasetNotFoundError as exc:
        store.set_study_status(study_id, "failed", error=str(exc))
        print(f"study {study_id} failed: {exc}", file=sys.stderr)
        return None
    return spec


def print_outcome(record: StudyRecord, *, tracking_uri: str) -> None:
    if record.status == "succeeded":
        from studies.analysis.report import format_table, load_summary

        # The same table as `robustness report`: the answer the study exists for.
        print(format_table(load_summary(record.study_id, tracking_uri=tracking_uri)))
    print(
        json.dumps(
            {
                "study_id": record.study_id,
                "status": record.status,
                "tracking_uri": tracking_uri,
                "experiment_id": record.experiment_id,
                "run_id": record.run_id,
            }
        )
    )
    hint = {
        "succeeded": f"summary: robustness report {record.study_id}",
        "cancelled": f"interrupted; continue with: robustness run --study-id "
        f"{record.study_id} --resume",
        "failed": f"failed: {record.error}",
    }.get(record.status, "")
    print(
        f"study {record.study_id} {record.status}. MLflow: {tracking_uri} "
        f"(experiment {record.experiment_id}, parent run {record.run_id}). {hint}",
        file=sys.stderr,
    )
