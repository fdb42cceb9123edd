"""How long reading a finished study's records takes (target: well under 1 s for 1000 trials x
164 epochs, the paper's CIFAR-10 schedule).

Writes a synthetic study (``--trials`` trials x ``--epochs`` epochs x 4 metrics) into a SQLite
MLflow store through ``studies.tracking`` (``log_history``: 1000 values per ``log_batch``),
then prints the time of ``load_trials`` on each path:

* bulk: the study is running, its trials come from a few SQL queries, histories from one per
  500 runs; "nothing new": a later read, which re-reads only the runs with new metric rows;
* snapshot cold: the study has finished, ``trials.json`` is read (first read in the process);
* snapshot cached: later reads (the parent run's tags are still checked each time).

    .venv/bin/python bench/load_trials.py                  # 1000 x 164, a tmp store
    .venv/bin/python bench/load_trials.py --db /tmp/b.db   # keep the store; reruns reuse it
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from studies import tracking

OPTIMIZERS = ("radam", "adam", "sgd")
WARMUPS = ("none", "linear", "untuned_linear", "untuned_exponential")


def write_study(uri: str, *, name: str, trials: int, epochs: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    spec = {"name": name, "dataset": "cifar10", "model": "resnet20", "epochs": epochs}
    record = tracking.store_for(uri).create_study(spec, num_trials=trials)
    tracking.store_for(uri).set_study_status(record.study_id, "running")
    started = time.perf_counter()
    for index in range(trials):
        params = {
            "optimizer": OPTIMIZERS[index % len(OPTIMIZERS)],
            "lr": 10 ** rng.uniform(-5, -1),  # 1
            "warmup": WARMUPS[index % len(WARMUPS)],
            "warmup_steps": 0,
            "seed": index // 100,
        }
        run_id = tracking.store_for(uri).start_trial(record.study_id, f"t{index:05d}", params)
        history = {
            "train_loss": [rng.uniform(0.01, 2.3) for _ in range(epochs)],
            "test_loss": [rng.uniform(0.2, 2.3) for _ in range(epochs)],
            "test_acc": [rng.uniform(0.1, 0.93) for _ in range(epochs)],
            "lr": [params["lr"] * (0.1 if e > 80 else 1.0) for e in range(epochs)],  # type: ignore[operator]
        }
        tracking.store_for(uri).log_history(run_id, history)
        tracking.store_for(uri).end_trial(
            run_id, "finished", node="node-0", train_seconds=rng.uniform(1, 9)
        )
        if (index + 1) % 100 == 0:
            elapsed = time.perf_counter() - started
            print(f"  wrote {index + 1} trials in {elapsed:.1f} s", flush=True)
    return record.study_id


def timed(label: str, call: Callable[[], object], *, repeat: int = 1) -> object:
    """Wall time, and this process's CPU time (what a shared, oversubscribed machine distorts
    least)."""
    times, cpu_times = [], []
    result: object = None
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = call()
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
    detail = f"  (median of {repeat}, min {min(times):.3f} s)" if repeat > 1 else ""
    print(
        f"{label:<36} {statistics.median(times):7.3f} s wall, "
        f"{statistics.median(cpu_times):6.3f} s CPU{detail}",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=164)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file (default: a tmp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-load-trials-") as tmp:
        db = args.db or Path(tmp) / "mlflow.db"
        uri = f"sqlite:///{db.resolve()}"
        name = f"bench-{args.trials}x{args.epochs}"
        existing = [s for s in tracking.store_for(uri).list_studies() if s.name == name]
        if existing:
            study_id = existing[0].study_id
            print(f"reusing study {study_id} in {db}")
            tracking.store_for(uri).set_study_status(study_id, "running")
        else:
            print(f"writing {args.trials} trials x {args.epochs} epochs x 4 metrics to {db}")
            started = time.perf_counter()
            study_id = write_study(uri, name=name, trials=args.trials, epochs=args.epochs)
            print(f"{'write (whole study)':<36} {time.perf_counter() - started:7.3f} s wall")

        tracking.forget_stores()
        tracking.store_for(uri).get_study(study_id)  # warm the client, not the histories
        trials = timed(
            "load_trials, bulk (running study)",
            lambda: tracking.store_for(uri).load_trials(study_id),
        )
        assert isinstance(trials, list)
        timed(
            "load_trials, bulk, nothing new",
            lambda: tracking.store_for(uri).load_trials(study_id),
            repeat=3,
        )
        points = sum(len(values) for t in trials for values in t.history.values())
        print(f"  {len(trials)} trials, {points} metric values")
        timed(
            "finish study (writes trials.json)",
            lambda: tracking.store_for(uri).set_study_status(study_id, "succeeded"),
        )
        tracking.forget_stores()  # cold: as in a fresh service process
        timed("load_trials, snapshot cold", lambda: tracking.store_for(uri).load_trials(study_id))
        tracking.forget_stores()
        tracking.store_for(uri).get_study(study_id)  # warm the client, not the snapshot
        timed(
            "load_trials, snapshot (warm client)",
            lambda: tracking.store_for(uri).load_trials(study_id),
        )
        timed(
            "load_trials, snapshot cached",
            lambda: tracking.store_for(uri).load_trials(study_id),
            repeat=10,
        )
        size = len(tracking.store_for(uri).download_artifact(study_id, "trials.json"))
        print(f"  trials.json: {size / 1e6:.1f} MB")
        print(f"  load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
