"""How long a robustness summary takes for a finished 1000-trial, 164-epoch study.

Goal: at most 1 s for the summary of such a study (Figure 6's CIFAR-10 schedule is 164
epochs). Prints, with synthetic records (4 optimizers x 50 learning rates x 5 seeds):

- ``summarize()`` alone (vectorised numpy; includes the 2,000-resample bootstrap);
- the JSON round trip of the summary (what the cache and the service pay);
- ``format_table()`` and the figures (not part of the 1 s goal; printed for scale);
- with ``--tracking``: the end-to-end read from a tmp SQLite MLflow store
  (``tracking.load_trials`` + ``summarize``), then ``load_summary`` of the finished study twice
  (first read, then the cached answer the service gets). Writing the study into MLflow takes
  minutes on 2 cores, so this part is opt-in and ``--trials`` shrinks it.

    .venv/bin/python bench/summary.py [--trials 1000] [--epochs 164] [--tracking]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studies.results import TrialRecord
from studies.summary import StudySummary, format_table, summarize

OPTIMIZERS = ("radam", "adam", "adamw", "sgd")
SEEDS = 5


def synthetic_trials(n_trials: int, epochs: int, *, seed: int = 0) -> list[TrialRecord]:
    """Plausible curves: saturating accuracy whose ceiling falls off away from a best lr."""
    rng = np.random.default_rng(seed)
    n_lrs = max(1, n_trials // (len(OPTIMIZERS) * SEEDS))
    lrs = np.logspace(-4, 0, n_lrs)
    t = np.arange(1, epochs + 1)
    trials: list[TrialRecord] = []
    for o, optimizer in enumerate(OPTIMIZERS):
        width = 2.2 - o * 0.4  # in decades: RAdam the most forgiving here
        for lr in lrs:
            ceiling = 0.92 - 0.3 * (np.log10(lr) + 2.0) ** 2 / width**2
            for s in range(SEEDS):
                curve = np.clip(
                    ceiling * (1 - np.exp(-t / 20.0)) + rng.normal(0, 0.005, epochs), 0, 1
                )
                diverged = ceiling < 0.1 and s % 2 == 0
                history = {
                    "test_acc": curve[: epochs // 3 if diverged else epochs].tolist(),
                    "train_loss": (1 - curve).tolist(),
                    "test_loss": (1 - curve).tolist(),
                    "lr": [float(lr)] * epochs,
                }
                trials.append(
                    TrialRecord(
                        trial_id=f"{optimizer}-{lr:.3g}-{s}",
                        optimizer=optimizer,
                        lr=float(lr),
                        warmup="none",
                        warmup_steps=0,
                        seed=s,
                        status="diverged" if diverged else "finished",
                        history=history,
                    )
                )
    return trials[:n_trials]


def timed(label: str, fn: Callable[[], object], *, repeat: int = 5) -> object:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    print(f"{label:<52} median {statistics.median(times):7.3f} s   min {min(times):7.3f} s")
    return result


def bench_tracking(trials: list[TrialRecord], epochs: int) -> None:
    from studies import report, tracking
    from studies.spec import StudySpec

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        spec = StudySpec.model_validate({"name": "bench", "epochs": epochs})
        record = tracking.create_study(spec, tracking_uri=uri)
        started = time.perf_counter()
        _write_trials(tracking, record.study_id, trials, uri)
        print(
            f"{'writing the study into MLflow (setup, not timed goal)':<52} {time.perf_counter() - started:7.1f} s"
        )
        tracking.set_study_status(record.study_id, "succeeded", tracking_uri=uri)
        timed(
            "load_trials + summarize (end to end)",
            lambda: summarize(tracking.load_trials(record.study_id, tracking_uri=uri)),
            repeat=3,
        )
        out = Path(tmp) / "report"
        timed(
            "load_summary, first read (no cache)",
            lambda: report.load_summary(
                record.study_id, tracking_uri=uri, out_dir=out, refresh=True
            ),
            repeat=1,
        )
        timed(
            "load_summary of the finished study (cached)",
            lambda: report.load_summary(record.study_id, tracking_uri=uri, out_dir=out),
        )


def _write_trials(tracking: object, study_id: str, trials: list[TrialRecord], uri: str) -> None:
    """Through the tracking API the runner uses; shimmed on whatever it exposes."""
    writer = getattr(tracking, "write_trial_records", None)
    if writer is not None:
        writer(study_id, trials, tracking_uri=uri)
        return
    raise SystemExit("tracking has no bulk writer: skip --tracking (see bench docstring)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=164)
    parser.add_argument("--tracking", action="store_true", help="also time the SQLite read")
    args = parser.parse_args()

    trials = synthetic_trials(args.trials, args.epochs)
    print(
        f"{len(trials)} trials x {args.epochs} epochs, {len(OPTIMIZERS)} optimizers, {SEEDS} seeds"
    )
    summary = timed(
        "summarize() (goal: <= 1 s)", lambda: summarize(trials, trials_total=len(trials))
    )
    assert isinstance(summary, StudySummary)
    text = summary.to_json()
    print(f"summary.json: {len(text) / 1e6:.2f} MB, {len(summary.cells)} cells")
    timed("summary JSON round trip (cache read)", lambda: StudySummary.from_json(text))
    timed("format_table()", lambda: format_table(summary))
    with tempfile.TemporaryDirectory() as tmp:
        from studies.figures import write_figures

        timed("write_figures() (png + svg)", lambda: write_figures(summary, Path(tmp)), repeat=1)
        write_figures(summary, Path("/tmp/bench_figs"))
    print(format_table(summary).splitlines()[-4])
    if args.tracking:
        bench_tracking(trials, args.epochs)


if __name__ == "__main__":
    main()
