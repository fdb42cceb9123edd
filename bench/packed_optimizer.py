"""Median wall time of one optimizer step for a pack of K members: PackedOptimizer against
K separate optimizers.

Contenders, each over the same K members (a Figure 6 mix: radam, adamw and sgd in turn,
with different learning rates):

* ``packed fused``: ``PackedOptimizer(impl="fused")`` (the default on CPU and CUDA): members
  of a kind and lr through one fused-kernel call over their views;
* ``packed foreach``: ``PackedOptimizer(impl="foreach")``: members of a kind through one
  foreach call per operation, the lr broadcast per member;
* ``packed members``: ``PackedOptimizer(impl="members")``, each member's own
  ``make_optimizer`` over views of its slices, one after another;
* ``separate``: K ``make_optimizer`` optimizers over K sets of tensors of their own (what K
  one-trial-per-process trials run, minus the processes).

Parameter sets: ResNet-20 shapes (0.27M parameters, 65 tensors; bench/optimizer_step.py)
and a digits MLP (64-128-10, 4 tensors), float32, stacked for K = 1, 4, 16, 36. All are
warmed past RAdam's un-rectified steps, then take turns, one timed step each per round, so
the load of a shared machine falls on all alike; the figure is the median over rounds.

    .venv/bin/python bench/packed_optimizer.py [--ks 1 4 16 36] [--rounds 20] [--threads 2]
        [--sets resnet20 mlp] [--clock wall|cpu] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from optimizer_step import resnet20_shapes

from radam.packed import MemberHparams, PackedOptimizer

Shapes = list[tuple[int, ...]]
WARMUP_STEPS = 8  # past RAdam's un-rectified steps (t <= 5)
KINDS = ("radam", "adamw", "sgd")
LRS = (0.1, 0.03, 0.01, 0.003)
HOWS = ("packed fused", "packed foreach", "packed members", "separate")


def mlp_shapes() -> Shapes:
    return [(128, 64), (128,), (10, 128), (10,)]


SETS: dict[str, Callable[[], Shapes]] = {"resnet20": resnet20_shapes, "mlp": mlp_shapes}


def members(k: int) -> list[MemberHparams]:
    return [
        MemberHparams(name=KINDS[i % 3], lr=LRS[(i // 3) % 4], weight_decay=1e-4) for i in range(k)
    ]


class Contender:
    """One way of stepping K members, with its tensors and fresh gradients each step."""

    def __init__(self, how: str, shapes: Shapes, hps: list[MemberHparams], device: str) -> None:
        k = len(hps)
        self.lrs = [m.lr for m in hps]
        gen = torch.Generator().manual_seed(0)
        if how == "separate":
            self.tensors = [
                [torch.randn(s, generator=gen).to(device).requires_grad_() for s in shapes]
                for _ in range(k)
            ]
            self.opts = [m.make(ts) for m, ts in zip(hps, self.tensors, strict=True)]
            self.flat = [t for ts in self.tensors for t in ts]
        else:
            self.flat = [
                torch.randn((k, *s), generator=gen).to(device).requires_grad_() for s in shapes
            ]
            self.packed = PackedOptimizer(self.flat, hps, impl=how.split()[1])  # type: ignore[arg-type]
        self.how = how

    def grads(self) -> None:
        for t in self.flat:
            t.grad = torch.randn_like(t) * 1e-2

    def step(self) -> None:
        if self.how == "separate":
            for opt, lr in zip(self.opts, self.lrs, strict=True):
                for group in opt.param_groups:
                    group["lr"] = lr
                opt.step()
        else:
            self.packed.step(self.lrs)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench(
    shapes: Shapes, k: int, rounds: int, device: str, clock: Callable[[], float]
) -> dict[str, float]:
    hows = HOWS
    contenders = [Contender(h, shapes, members(k), device) for h in hows]
    for c in contenders:
        for _ in range(WARMUP_STEPS):
            c.grads()
            c.step()
    times: dict[str, list[float]] = {h: [] for h in hows}
    for _ in range(rounds):
        for c in contenders:
            c.grads()
            _sync(device)
            start = clock()
            c.step()
            _sync(device)
            times[c.how].append(clock() - start)
    return {h: statistics.median(ts) * 1e3 for h, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 36])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: this thread's CPU time (with --threads 1 and on the CPU), which the other "
        "processes of a loaded machine disturb far less than wall time",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    if args.clock == "cpu" and (args.threads != 1 or args.device != "cpu"):
        parser.error("--clock cpu measures one thread on the CPU: use --threads 1 --device cpu")
    results: list[dict[str, Any]] = []
    print(
        f"device {args.device}, {args.threads} threads, {args.clock} clock, median ms per step "
        f"over {args.rounds} rounds"
    )
    print(f"{'set':<9} {'K':>3} " + " ".join(f"{h:>15}" for h in HOWS) + f" {'sep/fused':>10}")
    for name in args.sets:
        for k in args.ks:
            r = bench(SETS[name](), k, args.rounds, args.device, clock)
            ratio = r["separate"] / r["packed fused"]
            cells = " ".join(f"{r[h]:>15.3f}" for h in HOWS)
            print(f"{name:<9} {k:>3} {cells} {ratio:>10.2f}", flush=True)
            results.append({"set": name, "k": k, "ms": r, "separate_over_fused": ratio})
    if args.out is not None:
        meta = {"device": args.device, "threads": args.threads, "clock": args.clock}
        meta["torch"] = torch.__version__
        meta["machine"] = platform.processor() or platform.machine()
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
