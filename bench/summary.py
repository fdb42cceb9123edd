"""How long a robustness summary takes for a finished 1000-trial, 164-epoch study.

Goal: at most 1 s for the summary of such a study (Figure 6's CIFAR-10 schedule is 164
epochs). Prints, with synthetic records (4 optimizers x 50 learning rates x 5 seeds):

- ``summarize()`` alone (vectorised numpy; includes the verdict's permutation tests);
- the JSON round trip of the summary (what the cache and the service pay);
- ``format_table()`` and the figures (not part of the 1 s goal; printed for scale);
- with ``--tracking``: the same study written into a tmp SQLite MLflow store as the runner
  records it (one log_batch per trial instead of one per epoch, which would take hours; still
  minutes for 1000 trials on 2 cores, so opt-in; ``--trials`` shrinks it), then the live read + summarize, ``finalize_study``, and
  ``load_summary`` of the finished study: from the artifact, from the cache, and recomputed
  from tracking's snapshot.

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

from studies.analysis.summarize import summarize
from studies.analysis.summary import StudySummary
from studies.analysis.tables import format_table
from studies.results import TrialRecord

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
    from studies import tracking
    from studies.analysis import report

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        spec = {"name": "bench", "epochs": epochs, "num_trials": len(trials)}
        record = tracking.store_for(uri).create_study(spec)
        tracking.store_for(uri).set_study_status(record.study_id, "running")
        started = time.perf_counter()
        _write_trials(record.study_id, trials, uri)
        took = time.perf_counter() - started
        print(f"{'write the study into MLflow (setup)':<52} {took:13.1f} s")
        timed(
            "live read: load_trials + summarize (running study)",
            lambda: summarize(tracking.store_for(uri).load_trials(record.study_id)),
            repeat=3,
        )
        started = time.perf_counter()
        report.finalize_study(record.study_id, tracking_uri=uri, out_dir=Path(tmp) / "report")
        took = time.perf_counter() - started
        print(f"{'finalize_study (snapshot, summary, figures, artifacts)':<52} {took:13.1f} s")
        tracking.store_for(uri).set_study_status(record.study_id, "succeeded")
        report._cache.clear()
        timed(
            "load_summary, finished, new process (artifact)",
            lambda: report.load_summary(record.study_id, tracking_uri=uri),
            repeat=1,
        )
        timed(
            "load_summary, finished, cached (goal: <= 1 s)",
            lambda: report.load_summary(record.study_id, tracking_uri=uri),
        )
        timed(
            "snapshot read + summarize (no summary cache)",
            lambda: report.load_summary(record.study_id, tracking_uri=uri, refresh=True),
            repeat=3,
        )


def _write_trials(study_id: str, trials: list[TrialRecord], uri: str) -> None:
    """Trials as the runner records them (start_trial, per-epoch metrics with step=epoch,
    end_trial), except that each trial's epochs go in one ``log_batch``: the runner's one
    ``log_epoch`` per epoch costs ~40 ms here, hours for 164,000 epochs. Setup only."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from studies import tracking

    client = MlflowClient(tracking_uri=uri)
    now = int(time.time() * 1000)
    for t in trials:
        params = {"optimizer": t.optimizer, "lr": t.lr, "warmup": t.warmup}
        params |= {"warmup_steps": t.warmup_steps, "seed": t.seed}
        run_id = tracking.store_for(uri).start_trial(study_id, t.trial_id, params=params)
        metrics = [
            Metric(name, float(value), now, epoch + 1)
            for name, values in t.history.items()
            for epoch, value in enumerate(values)
        ]
        for start in range(0, len(metrics), 1000):  # MLflow's limit per log_batch
            client.log_batch(run_id, metrics=metrics[start : start + 1000], synchronous=True)
        tracking.store_for(uri).end_trial(run_id, t.status, train_seconds=1.0)


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
        from studies.analysis.figures import write_figures

        timed("write_figures() (png + svg)", lambda: write_figures(summary, Path(tmp)), repeat=1)
        write_figures(summary, Path("/tmp/bench_figs"))
    print(format_table(summary).splitlines()[-4])
    if args.tracking:
        bench_tracking(trials, args.epochs)


if __name__ == "__main__":
    main()
