"""What packing buys: K configurations trained as one program (``studies.training.pack``) against one
trial per process.

1. Throughput. For each road in ``--roads`` (``layers``: one horizontally fused network;
   ``vmap``: torch.func) and K in ``--sizes`` (default 1 2 4 8 16 36): ``run_pack`` over K
   configurations (SGD, AdamW, RAdam in turn, one seed each) for ``--epochs`` epochs, after a
   warm-up epoch; training images per second over all members, and per configuration,
   against ``run_trial`` in this process (the bare trial, no process cost) and in a fresh
   process each (``python -c``: interpreter, imports, dataset load and training, what one
   trial per process pays on top of its training).
2. A study. ``--study-configs`` (default 24) configurations of digits/MLP through the whole
   runner (local Ray, SQLite MLflow, checkpoints, summary) with ``pack_size: 1`` and with
   ``pack_size: auto``, ``--study-epochs`` each (default 164, Figure 6's length): wall time of
   each, their ratio (target >= 3x), and how far apart the two runs' curves are (the same
   curves, to float32 rounding).

    .venv/bin/python bench/packing.py                              # CPU: digits, mlp and cnn
    .venv/bin/python bench/packing.py --models resnet20 --dataset cifar10 --gpus 1 --skip-study

On a GPU (``--gpus 1``) the members train on CUDA under bf16 autocast. Prints the figures;
writes ``bench/results/packing.json``; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OPTIMIZERS = ("sgd", "adamw", "radam")


def _spec(
    dataset: str, model: str, *, epochs: int, train_subset: int | None, image_size: int | None
) -> Any:
    from studies.spec import StudySpec

    return StudySpec.parse(
        {
            "name": "packing",
            "dataset": dataset,
            "model": model,
            "optimizers": list(OPTIMIZERS),
            "learning_rates": [0.01],
            "epochs": epochs,
            "batch_size": 128 if dataset == "cifar10" else 64,
            "train_subset": train_subset,
            "image_size": image_size,
            "augment": dataset == "cifar10",
            "weight_decay": 1e-4,
        }
    )


def _configs(k: int) -> list[Any]:
    from studies.spec import TrialConfig

    return [TrialConfig(optimizer=OPTIMIZERS[i % 3], lr=0.01, seed=i) for i in range(k)]


def _subprocess_trial(spec: Any, *, threads: int, gpus: float) -> float:
    """Wall time of one trial in a fresh Python process, everything included."""
    code = (
        "import sys; from studies.spec import StudySpec, TrialConfig; "
        "from studies.training.trial import run_trial; "
        "spec = StudySpec.parse(sys.argv[1]); "
        f"run_trial(spec, TrialConfig(optimizer='sgd', lr=0.01), threads={threads}, gpus={gpus})"
    )
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, spec.to_json()], check=True, env=env)
    return time.perf_counter() - started


def throughput(args: argparse.Namespace, model: str) -> list[dict[str, Any]]:
    import torch

    from studies.training.pack import run_pack
    from studies.training.trial import get_dataset, pick_device, run_trial

    spec = _spec(
        args.dataset,
        model,
        epochs=args.epochs,
        train_subset=args.train_subset,
        image_size=args.image_size,
    )
    device = pick_device(args.gpus)
    images = get_dataset(spec, data_dir=None, device=device).num_train * args.epochs
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    run_trial(spec, _configs(1)[0], threads=args.threads, gpus=args.gpus, epochs=1)  # warm-up
    started = time.perf_counter()
    run_trial(spec, _configs(1)[0], threads=args.threads, gpus=args.gpus)
    sync()
    alone = time.perf_counter() - started
    process = _subprocess_trial(spec, threads=args.threads, gpus=args.gpus)
    print(
        f"{model}: {images / args.epochs:.0f} images/epoch; one trial in this process "
        f"{alone:.2f} s ({images / alone:,.0f} img/s), in its own process {process:.2f} s "
        f"({images / process:,.0f} img/s, all in)"
    )
    for road, k in [(road, k) for road in args.roads for k in args.sizes]:
        configs = _configs(k)
        options = {"threads": args.threads, "gpus": args.gpus, "road": road}
        try:
            run_pack(spec, configs, epochs=1, **options)  # warm-up
            sync()
            started = time.perf_counter()
            run_pack(spec, configs, **options)
            sync()
        except torch.OutOfMemoryError:
            print(f"  {road} K={k:3d}: out of memory")
            continue
        seconds = time.perf_counter() - started
        row = {
            "model": model,
            "road": road,
            "K": k,
            "seconds": seconds,
            "images_per_s": k * images / seconds,
            "images_per_s_per_config": images / seconds,
            "vs_trial_in_process": k * alone / seconds,
            "vs_trial_per_process": k * process / seconds,
        }
        rows.append(row)
        print(
            f"  {road:6s} K={k:3d}: {seconds:7.2f} s, {row['images_per_s']:9,.0f} img/s "
            f"({row['images_per_s_per_config']:8,.0f} per configuration); "
            f"{row['vs_trial_in_process']:5.2f}x trials in one process, "
            f"{row['vs_trial_per_process']:5.2f}x one trial per process"
        )
    return rows


def study(args: argparse.Namespace) -> dict[str, Any]:
    from studies import tracking
    from studies.runner import driver
    from studies.spec import StudySpec

    seeds = max(1, math.ceil(args.study_configs / 12))
    lrs = [0.1, 0.03, 0.01, 0.003]
    home = Path(tempfile.mkdtemp(prefix="packing-"))
    uri = f"sqlite:///{home / 'mlflow.db'}"
    tracking.store_for(uri).create_study({"name": "warm-up"})  # the store's creation
    out: dict[str, Any] = {}
    curves: dict[str, dict[str, dict[str, list[float]]]] = {}
    for pack_size in (1, "auto"):
        spec = StudySpec.parse(
            {
                "name": f"packing-{pack_size}",
                "dataset": "digits",
                "model": "mlp",
                "optimizers": list(OPTIMIZERS),
                "learning_rates": lrs,
                "seeds": list(range(seeds)),
                "epochs": args.study_epochs,
                "batch_size": 64,
                "pack_size": pack_size,
            }
        )
        started = time.perf_counter()
        record = driver.run_spec(spec, tracking_uri=uri, storage_path=home / "ray_results")
        wall = time.perf_counter() - started
        trials = tracking.store_for(uri).load_trials(record.study_id)
        out[str(pack_size)] = wall
        for t in trials:
            curves.setdefault(t.trial_id, {})[str(pack_size)] = {
                name: list(t.history[name]) for name in ("test_loss", "test_acc")
            }
        print(
            f"study of {spec.num_trials} configurations, pack_size {pack_size}: "
            f"{record.status}, wall {wall:.1f} s"
        )
    # float32: the packed kernels sum in another order, and over many epochs a chaotic run
    # (lr 0.1) drifts apart from its unpacked twin; compare the first epochs closely and the
    # final accuracies loosely.
    worst, apart = 0.0, 0
    for by_size in curves.values():
        a, b = by_size.get("1", {}), by_size.get("auto", {})
        for x, y in list(zip(a.get("test_loss", []), b.get("test_loss", []), strict=False))[:3]:
            if math.isfinite(x) and math.isfinite(y):
                worst = max(worst, abs(x - y) / max(abs(x), 1e-12))
        fa, fb = a.get("test_acc", [math.nan])[-1], b.get("test_acc", [math.nan])[-1]
        apart += int(not (abs(fa - fb) <= 0.01 or (math.isnan(fa) and math.isnan(fb))))
    out["speedup"] = out["1"] / out["auto"]
    out["max_rel_test_loss_difference_first_3_epochs"] = worst
    out["final_accuracies_more_than_1_point_apart"] = apart
    print(
        f"packed {out['speedup']:.2f}x faster; test losses over the first 3 epochs differ by "
        f"at most {worst:.1e} (relative); {apart} of {len(curves)} final accuracies differ "
        "by more than 1 point"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 2, 4, 8, 16, 36])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    # the two roads of a pack (studies.training.pack): fused layers (the default) and torch.func.vmap
    parser.add_argument("--roads", nargs="+", default=["layers", "vmap"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gpus", type=float, default=0.0)
    parser.add_argument("--study-configs", type=int, default=24)
    # Figure 6's length by default: the fixed cost of a study (Ray's start, the first worker,
    # the summary: ~16 s either way) weighs less the longer the trials, so the ratio depends
    # on it; 164 epochs is the length the project is for (3.4x measured, 2.85x at 100).
    parser.add_argument("--study-epochs", type=int, default=164)
    parser.add_argument("--skip-study", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    results: dict[str, Any] = {"args": vars(args)}
    if not args.skip_throughput:
        results["throughput"] = [row for m in args.models for row in throughput(args, m)]
    if not args.skip_study:
        results["study"] = study(args)
    out = ROOT / "bench" / "results" / "packing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
