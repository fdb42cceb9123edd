"""Where AdamW without warmup fails on the char Transformer: the ``transformer-warmup`` grid (or
a slice of it) trained as packs (``studies.training.pack.run_pack``, vmap), outside Ray and
MLflow, printing each configuration's final validation loss (nats/char) and the time per
packed step. It is how the preset's size, steps and learning rates were chosen
(docs/results/transformer-warmup.md).

    .venv/bin/python bench/transformer_warmup.py                      # the preset as it is
    .venv/bin/python bench/transformer_warmup.py --set epochs=2 --seeds 0 --pack 12
    .venv/bin/python bench/transformer_warmup.py --set model=transformer_pre_ln

``--set KEY=VALUE`` overrides the preset like ``robustness run --set``. Prints a table (one
row per optimizer x warmup, one column per lr, the mean over seeds; ``div`` for diverged) and
writes ``bench/results/transformer_warmup.json``; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

from studies.presets import apply_overrides, get_preset, parse_override
from studies.training.pack import run_pack

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="transformer-warmup")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", type=int, nargs="*", help="override the preset's seeds")
    parser.add_argument("--pack", type=int, default=12, help="members per pack")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    overrides = dict(parse_override(text) for text in args.set)
    if args.seeds:
        overrides["seeds"] = args.seeds
    spec = apply_overrides(get_preset(args.preset), overrides)
    configs = spec.trial_configs()
    print(f"{len(configs)} configurations, packs of {args.pack}, load {os.getloadavg()[0]:.2f}")
    finals: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    rows = []
    started = time.perf_counter()
    for a in range(0, len(configs), args.pack):
        pack = configs[a : a + args.pack]
        t0 = time.perf_counter()
        histories = run_pack(spec, pack, data_dir=args.data_dir, threads=args.threads)
        seconds = time.perf_counter() - t0
        steps = max(len(h) for h in histories) * _steps_per_epoch(spec)
        print(f"pack {a // args.pack + 1}: {seconds:.0f} s, {seconds / steps * 1e3:.0f} ms/step")
        for cfg, history in zip(pack, histories, strict=True):
            last = history[-1]
            loss = math.nan if last["diverged"] else last["test_loss"]
            warm = cfg.warmup if cfg.warmup != "linear" else f"linear{cfg.warmup_steps}"
            finals[(cfg.optimizer, warm, cfg.lr)].append(loss)
            rows.append({**cfg.model_dump(), "curve": [h["test_loss"] for h in history]})
    wall = time.perf_counter() - started
    lrs = sorted({lr for (_, _, lr) in finals})
    print(f"\nvalidation loss (nats/char) after {spec.epochs} epochs, mean over seeds")
    print(f"{'':24}" + "".join(f"{lr:>10g}" for lr in lrs))
    for key in sorted({(o, w) for (o, w, _) in finals}):
        cells = []
        for lr in lrs:
            values = finals.get((*key, lr), [])
            ok = [v for v in values if math.isfinite(v)]
            cells.append(f"{statistics.mean(ok):10.3f}" if len(ok) == len(values) else "       div")
        print(f"{key[0] + ' ' + key[1]:24}" + "".join(cells))
    print(f"\nwall {wall:.0f} s, load {os.getloadavg()[0]:.2f}")
    out = ROOT / "bench" / "results" / "transformer_warmup.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"spec": spec.to_dict(), "wall_s": wall, "trials": rows}, indent=1))


def _steps_per_epoch(spec: object) -> int:
    n, b = getattr(spec, "train_subset", None) or 1, getattr(spec, "batch_size", 1)
    return max(1, math.ceil(n / b))


if __name__ == "__main__":
    main()
