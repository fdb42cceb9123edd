"""Figure 6 on one machine: the ``figure6`` preset's configurations trained packed, to files.

    python -m studies.offline.figure6 OUTDIR [--epochs N] [--time-budget S] [--archive PATH]
    scripts/figure6_gpu.sh OUTDIR ...            # the same, with pydantic carried in

What it does, in order (each step's time goes in ``throughput.json``):

1. Unpacks the CIFAR-10 archive into ``<data dir>/cifar10`` unless it is there, and loads the
   dataset onto the device.
2. Parity: one configuration per optimizer trained one epoch packed and two epochs alone (the
   second, warm, timed: the one-trial-at-a-time baseline of the speed-up); their first epochs
   must agree (``studies.offline.packing.TOLERANCES``: bf16 on a GPU, float32 on
   the CPU), else it stops (exit 3) before spending the budget (``--parity-warn-only`` goes on).
3. Smoke: the whole pack for 2 epochs; the last epoch's wall time is the epoch time.
4. Plan: the full run (164 epochs, or ``--epochs``) is extrapolated from that time; if it fits
   what is left of ``--time-budget`` (seconds from the start of this command) it runs whole,
   else as many epochs as fit, with the lr milestones scaled to 81/164 and 122/164 of them
   (``studies.offline.budget``); ``run.json`` says which and why.
5. The run: it continues from the smoke's state when its schedule is the smoke's over those
   epochs (the full run; a shortened one whose first milestone lies past them, packed), else
   trains from scratch (``budget.choose_run``). Should epochs come out slower than the
   smoke's, it stops before the budget's end and keeps the epochs that ran, with the schedule
   they had (``run.json``: ``stopped_early``). Then one file per configuration, ``run.json``
   and ``throughput.json`` in OUTDIR (``studies.offline.resultfiles``).

``robustness import OUTDIR`` then makes a normal study of it on a machine with MLflow. Nothing
here imports ray, mlflow, optuna or fastapi. Exit status: 0 done, 2 bad input, 3 parity failed.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studies.errors import RobustnessError
from studies.offline import budget, packing, resultfiles
from studies.offline.archive import import_cifar10
from studies.offline.gpustats import GpuSampler
from studies.presets import PRESETS, apply_overrides, get_preset, parse_override
from studies.spec import StudySpec

DEFAULT_TIME_BUDGET = 480.0  # seconds: a 15-minute GPU lease, start-up and transfers left out
FINISH_RESERVE = 15.0  # seconds kept for writing the files and the last evaluation's slack
SMOKE_EPOCHS = 2
DEADLINE_SLACK = 5.0  # seconds before the budget's end by which the last epoch must be done
REPO = Path(__file__).resolve().parents[2]  # the source tree this runs from
ARCHIVE_CANDIDATES: tuple[str, ...] = (  # relative to the source tree
    ".carry/cifar10-jpeg75.tar.gz",  # carried to a GPU machine beside the wheels
    "shared/data/cifar10-jpeg75/cifar10-jpeg75.tar.gz",
    "../shared/data/cifar10-jpeg75/cifar10-jpeg75.tar.gz",
    "/work/shared/data/cifar10-jpeg75/cifar10-jpeg75.tar.gz",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="figure6_gpu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("outdir", type=Path, metavar="OUTDIR", help="an empty or new folder")
    parser.add_argument("--epochs", type=int, help="the run to aim at (default: the preset's 164)")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=DEFAULT_TIME_BUDGET,
        metavar="S",
        help=f"seconds this command may take in all (default {DEFAULT_TIME_BUDGET:g})",
    )
    parser.add_argument("--archive", type=Path, help="the CIFAR-10 image-folder tar(.gz)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="datasets folder (default $ROBUSTNESS_DATA_DIR or <repo>/.robustness/data)",
    )
    parser.add_argument(
        "--preset", default="figure6", help="the study: a preset or a spec file (default figure6)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field, as `robustness run --set` (e.g. seeds=[0])",
    )
    parser.add_argument(
        "--subset", type=int, metavar="N", help="first N training and test images (tests)"
    )
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--smoke-epochs", type=int, default=SMOKE_EPOCHS)
    parser.add_argument(
        "--parity-warn-only", action="store_true", help="go on when the parity check fails"
    )
    parser.add_argument("--commit", default=os.environ.get("ROBUSTNESS_COMMIT"))
    return parser


def target_spec(args: argparse.Namespace) -> tuple[StudySpec, int]:
    """The preset with ``--set``/``--subset`` applied and the schedule of ``--epochs``; and the
    preset's own number of epochs (the paper's 164 for figure6)."""
    if args.preset in PRESETS:
        spec = get_preset(args.preset)
    elif Path(args.preset).is_file():
        spec = StudySpec.parse(Path(args.preset).read_text())
    else:
        raise RobustnessError(
            f"--preset {args.preset!r} is neither a preset ({', '.join(PRESETS)}) nor a spec file"
        )
    overrides: dict[str, Any] = dict(parse_override(text) for text in args.overrides)
    if args.subset is not None:
        overrides.setdefault("train_subset", args.subset)
        overrides.setdefault("test_subset", args.subset)
    if overrides:
        spec = apply_overrides(spec, overrides)
    return budget.with_epochs(spec, args.epochs or spec.epochs, full=spec), spec.epochs


def device_of(choice: str) -> tuple[str, float, str]:
    """(torch device type, the gpus to ask for, a description) for ``--device``."""
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise RobustnessError("--device cuda, but torch sees no CUDA device")
    if choice != "cpu" and torch.cuda.is_available():
        return "cuda", 1.0, f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    return "cpu", 0.0, f"cpu {cpu}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def device_slug(description: str) -> str:
    """``"NVIDIA H200 (torch 2.11)"`` -> ``"h200"``: the record's file name."""
    name = description.split(" (")[0].split(",")[0].lower().replace("nvidia", "")
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "device"


class OutOfTime(Exception):
    """Raised from the per-epoch hook when the next epoch would end past the deadline."""


class EpochClock:
    """Wall time of each epoch of a pack run, each member's rows so far, a progress line per
    epoch; with a ``deadline`` (``time.monotonic()``), ``OutOfTime`` when another epoch as
    long as the last would end after it (epochs slower than the smoke's: the rows so far are
    kept, the run stops, the results say so)."""

    def __init__(
        self, label: str, epochs: int, *, members: int = 0, deadline: float | None = None
    ) -> None:
        self.label, self.epochs, self.deadline = label, epochs, deadline
        self.times: list[float] = []
        self.rows: list[list[dict[str, Any]]] = [[] for _ in range(members)]
        self.last = time.perf_counter()

    def __call__(self, rows: list[dict[str, Any] | None]) -> None:
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now
        for kept, row in zip(self.rows, rows, strict=False):
            if row is not None:
                kept.append(row)
        live = [r for r in rows if r is not None]
        accs = [r["test_acc"] for r in live if r["test_acc"] == r["test_acc"]]  # not NaN
        best = f"best {100 * max(accs):.2f}%" if accs else "best -"
        diverged = sum(1 for r in live if r.get("diverged"))
        print(
            f"{self.label}: epoch {len(self.times)}/{self.epochs} {self.times[-1]:.1f}s "
            f"{best}, {len(live)} members, {diverged} diverged this epoch",
            file=sys.stderr,
            flush=True,
        )
        if (
            self.deadline is not None
            and len(self.times) < self.epochs
            and time.monotonic() + self.times[-1] > self.deadline
        ):
            raise OutOfTime(f"{self.label}: out of time after epoch {len(self.times)}")


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    out: Path = args.outdir
    if (out / resultfiles.TRIALS_DIR).is_dir() and any((out / resultfiles.TRIALS_DIR).iterdir()):
        raise RobustnessError(f"{out} already holds results; give an empty or new folder")
    spec, full_epochs = target_spec(args)
    configs = spec.trial_configs()
    data_dir = args.data_dir or Path(
        os.environ.get("ROBUSTNESS_DATA_DIR") or REPO / ".robustness" / "data"
    )
    phases: dict[str, float] = {}

    t0 = time.monotonic()
    if spec.dataset == "cifar10":
        archive = args.archive or next(
            (REPO / p for p in ARCHIVE_CANDIDATES if (REPO / p).is_file()), None
        )
        if archive is None:
            raise RobustnessError(
                f"no CIFAR-10 archive: give --archive (looked in {ARCHIVE_CANDIDATES})"
            )
        import_cifar10(archive, data_dir)
    device_type, gpus, device = device_of(args.device)
    if device_type == "cpu" and args.device == "auto":
        print("figure6: torch sees no CUDA device: training on the CPU", file=sys.stderr)
    import torch

    from studies.training.trial import get_dataset

    ds = get_dataset(spec, data_dir=str(data_dir), device=torch.device(device_type))
    phases["data"] = time.monotonic() - t0
    print(f"figure6: {len(configs)} configurations on {device}; {ds!r}", file=sys.stderr)
    common = {"data_dir": str(data_dir), "gpus": gpus, "threads": args.threads}
    run_id = uuid.uuid4().hex[:12]
    manifest: dict[str, Any] = {
        "format": resultfiles.RUN_FORMAT,
        "version": resultfiles.FORMAT_VERSION,
        "run_id": run_id,
        "preset": args.preset,
        "started_at": stamp,
        "device": device,
        "device_slug": device_slug(device),
        "node": platform.node(),
        "commit": args.commit,
        "packed": packing.packed(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "target_spec": spec.to_dict(),
    }

    with GpuSampler() as sampler:
        t0 = time.monotonic()
        parity = packing.parity_check(
            spec, packing.parity_members(spec), device_type=device_type, **common
        )
        phases["parity"] = time.monotonic() - t0
        manifest["parity"] = parity
        if not parity["ok"]:
            print(f"figure6: parity check FAILED: {parity['members']}", file=sys.stderr)
            if not args.parity_warn_only:
                resultfiles.write_json(out / "parity_failed.json", manifest)
                return 3

        t0 = smoke_started = time.monotonic()
        smoke_epochs = max(1, min(args.smoke_epochs, spec.epochs))
        clock = EpochClock("smoke", smoke_epochs)
        smoke_rows, smoke_state = packing.train_pack(
            spec, configs, epochs=smoke_epochs, on_epoch=clock, **common
        )
        phases["smoke"] = time.monotonic() - t0
        clock_smoke_times = list(clock.times)
        manifest["smoke"] = {"epochs": smoke_epochs, "epoch_seconds": clock_smoke_times}

        remaining = args.time_budget - (time.monotonic() - started) - FINISH_RESERVE
        choice = budget.choose_run(
            spec,
            smoke_epochs=smoke_epochs,
            epoch_seconds=clock_smoke_times[-1],
            remaining_seconds=remaining,
            resume_other_specs=packing.packed(),
        )
        plan, final = choice.plan, choice.spec
        manifest["plan"] = plan.as_dict()
        print(
            f"figure6: {spec.epochs} epochs would take {plan.full_run_seconds:.0f}s at "
            f"{plan.epoch_seconds:.1f}s each; {remaining:.0f}s left: running {plan.epochs}"
            + (f", continuing the smoke's {smoke_epochs}" if choice.resume else ""),
            file=sys.stderr,
        )
        if plan.shortened:
            manifest["schedule_note"] = (
                f"shortened to {plan.epochs} of {spec.epochs} epochs to fit the time budget; "
                f"lr milestones {spec.lr_milestones} scaled to {final.lr_milestones}"
            )
        train_started = time.monotonic()
        deadline = started + args.time_budget - DEADLINE_SLACK
        if choice.resume or plan.epochs > smoke_epochs:
            done = smoke_epochs if choice.resume else 0
            window = smoke_started if choice.resume else time.monotonic()
            clock = EpochClock(
                "train", final.epochs - done, members=len(configs), deadline=deadline
            )
            try:
                packing.train_pack(
                    final,
                    configs,
                    epochs=final.epochs,
                    resume_from=smoke_state if choice.resume else None,
                    on_epoch=clock,
                    **common,
                )
            except OutOfTime:
                ran = done + len(clock.times)
                manifest["stopped_early"] = True
                manifest["schedule_note"] = (
                    f"stopped after epoch {ran} of the {final.epochs} planned: the epochs ran "
                    f"slower than the smoke's; the spec records the {ran} epochs with the lr "
                    f"schedule they had"
                )
                final = budget.truncate(final, ran)
            prior = smoke_rows if choice.resume else [[] for _ in configs]
            rows = [p + r for p, r in zip(prior, clock.rows, strict=True)]
            epoch_times = (clock_smoke_times if choice.resume else []) + clock.times
        else:
            # No time beyond the smoke, whose schedule is not the shortened one: its epochs
            # are the result, with the schedule they ran.
            final = budget.truncate(spec, smoke_epochs)
            rows, epoch_times, window = smoke_rows, clock_smoke_times, smoke_started
            manifest["schedule_note"] = (
                f"the budget allowed no epochs beyond the smoke's: these are the smoke's "
                f"{smoke_epochs} epochs, with the lr schedule they ran "
                f"(milestones {final.lr_milestones})"
            )
        manifest["resumed_from_smoke"] = choice.resume
        phases["train"] = time.monotonic() - train_started
        gpu = sampler.summary(since=window)  # the epochs the results hold

    manifest["spec"] = final.to_dict()
    manifest["epochs"] = final.epochs
    manifest["preset_epochs"] = full_epochs
    manifest["shortened"] = final.epochs < full_epochs
    manifest["lr_milestones"] = list(final.lr_milestones)
    for config, member_rows in zip(configs, rows, strict=True):
        resultfiles.write_trial(
            out, spec=final, config=config, rows=member_rows, run_id=run_id, device=device
        )
    phases["total"] = time.monotonic() - started
    manifest["ended_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    manifest["wall_seconds"] = phases
    if device_type == "cuda":
        gpu["torch_max_memory_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    resultfiles.write_json(
        out / resultfiles.THROUGHPUT_FILE,
        resultfiles.throughput(
            final,
            [c.key for c in configs],
            rows,
            num_train=ds.num_train,
            epoch_times=epoch_times,
            phases=phases,
            gpu=gpu,
            device=device,
            packed=packing.packed(),
            alone_epoch_seconds=[
                m["alone_epoch_seconds"]
                for m in parity["members"]
                if m.get("alone_epoch_seconds") is not None
            ],
        ),
    )
    resultfiles.write_json(out / resultfiles.RUN_FILE, manifest)
    print(
        f"figure6: wrote {len(configs)} trial files, run.json, throughput.json to {out}",
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except RobustnessError as exc:
        print(f"figure6: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
