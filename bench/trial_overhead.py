"""What a trial costs beyond its own training, and how fast the trainable trains.

1. Fixed cost. Two studies of tiny trials (digits, MLP, one epoch) on the embedded default,
   one trial at a time; per study: wall time, the sum of the trials' own ``train_seconds``
   and their difference. The difference of the two studies' overheads divided by the
   difference of their trial counts is the marginal fixed cost of one trial (scheduling,
   the MLflow records, the checkpoint); the rest is the study's own (Ray start, the first
   worker's imports, the summary). Target: at most 1 s per trial.
2. Throughput. ``trainable.run_trial`` against a bare torch loop (the same model, optimizer,
   batches and threads; no scheduler, checks or evaluation) on Fashion-MNIST with the small
   CNN; training images per second. Target: at least 0.95 of the bare loop.

    .venv/bin/python bench/trial_overhead.py [--trials 4 12] [--images 8000] [--threads 1]

Prints the figures; asserts nothing (speed goals live here, not in the tests).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def fixed_cost(trial_counts: list[int]) -> None:
    from studies import tracking
    from studies.runner import driver
    from studies.spec import StudySpec

    home = Path(tempfile.mkdtemp(prefix="trial-overhead-"))
    uri = f"sqlite:///{home / 'mlflow.db'}"
    tracking.store_for(uri).create_study({"name": "warm-up"})  # the store's creation
    overheads: list[tuple[int, float]] = []
    for n in trial_counts:
        lrs = [round(0.001 * 1.3**i, 6) for i in range(n)]
        spec = StudySpec.parse(
            {
                "name": f"overhead-{n}",
                "dataset": "digits",
                "model": "mlp",
                "optimizers": ["sgd"],
                "learning_rates": lrs,
                "epochs": 1,
                "batch_size": 64,
                "max_concurrent_trials": 1,
            }
        )
        started = time.perf_counter()
        record = driver.run_spec(spec, tracking_uri=uri, storage_path=home / "ray_results")
        wall = time.perf_counter() - started
        trials = tracking.store_for(uri).load_trials(record.study_id)
        own = sum(t.train_seconds or 0.0 for t in trials)
        overheads.append((n, wall - own))
        print(
            f"study of {n:3d} trials: wall {wall:6.1f} s, trials' own time {own:5.1f} s, "
            f"overhead {wall - own:6.1f} s = {(wall - own) / n:5.2f} s/trial (all in)"
        )
    if len(overheads) >= 2:
        (n1, o1), (n2, o2) = overheads[0], overheads[-1]
        marginal = (o2 - o1) / (n2 - n1)
        print(
            f"marginal fixed cost per trial: {marginal:.2f} s (target <= 1 s); "
            f"per study: {o1 - marginal * n1:.1f} s"
        )


def throughput(*, images: int, threads: int, epochs: int) -> None:
    import torch
    from torch import nn

    from radam.factory import make_optimizer
    from studies.spec import StudySpec, TrialConfig
    from studies.training.trial import get_dataset, run_trial
    from studies.workloads.batching import batches
    from studies.workloads.models import build_model

    torch.set_num_threads(threads)
    spec = StudySpec.parse(
        {
            "name": "throughput",
            "dataset": "fashion_mnist",
            "model": "cnn",
            "optimizers": ["adamw"],
            "learning_rates": [0.001],
            "epochs": epochs,
            "batch_size": 128,
            "train_subset": images,
            "test_subset": 1,  # evaluation out of the comparison
        }
    )
    ds = get_dataset(spec, data_dir=None, device=torch.device("cpu"))
    trial = TrialConfig(optimizer="adamw", lr=0.001)
    run_trial(spec, trial, threads=threads, epochs=1)  # warm: imports, first-step compile

    def bare_loop() -> tuple[float, float]:
        torch.manual_seed(0)
        model = build_model(
            "cnn", num_classes=ds.num_classes, in_channels=ds.in_channels, image_size=ds.image_size
        )
        optimizer = make_optimizer("adamw", model.parameters(), lr=0.001)
        generator = torch.Generator().manual_seed(0)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(epochs):
            model.train()
            for x, y in batches(ds, batch_size=spec.batch_size, generator=generator):
                loss = nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
        return time.perf_counter() - wall, time.process_time() - cpu

    def trainable() -> tuple[float, float]:
        # the whole call: model and optimizer set-up, schedule, checks, a 1-example evaluation
        wall, cpu = time.perf_counter(), time.process_time()
        run_trial(spec, trial, threads=threads)
        return time.perf_counter() - wall, time.process_time() - cpu

    # Interleaved rounds, best of each: other processes share these cores, and CPU time
    # (process_time) is the figure they disturb least.
    rounds = 4
    bare: list[tuple[float, float]] = []
    ours: list[tuple[float, float]] = []
    for _ in range(rounds):
        bare.append(bare_loop())
        ours.append(trainable())
    seen = images * epochs
    for i, what in enumerate(("wall", "CPU")):
        b, o = min(t[i] for t in bare), min(t[i] for t in ours)
        print(
            f"throughput by {what:4s} time ({threads} thread(s), cnn, {images} Fashion-MNIST "
            f"images x {epochs} epochs, best of {rounds}): bare loop {seen / b:6.0f} img/s, "
            f"trainable {seen / o:6.0f} img/s, ratio {b / o:.3f} (target >= 0.95)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[4, 12])
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    if not args.skip_throughput:
        throughput(images=args.images, threads=args.threads, epochs=args.epochs)
    if not args.skip_overhead:
        fixed_cost(args.trials)


if __name__ == "__main__":
    main()
