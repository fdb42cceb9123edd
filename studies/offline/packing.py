"""Training a pack of configurations, and the check that packing changes nothing.

``train_pack`` is the one seam between the offline commands and the pack runner
(``studies.training.pack.run_pack``, issue "Packed trials"): every configuration of the pack
trains as one program on one device. While that module (or ``radam.packed``, which it needs)
is not in the tree, it falls back to training the configurations one after another with
``studies.training.trial.run_trial`` (epoch by epoch, so the per-epoch callback sees every
member as it would in a pack) and says so: ``packed()`` is false and the results record
``"packed": false`` (``packed()``). That fallback exists for plumbing on a branch without the
pack runner, not for a GPU run.

``parity_check`` trains a few configurations for one epoch both packed and one at a time and
compares their first-epoch metrics: equal up to rounding in float32 on the CPU, within bf16
autocast's error on a GPU (``TOLERANCES``; the measured differences are recorded either way).
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from studies.spec import StudySpec, TrialConfig

#: The modules the pack runner is made of: while one is absent, the fallback trains.
PACK_MODULES: frozenset[str] = frozenset({"studies.training.pack", "radam.packed"})

Rows = list[dict[str, Any]]
OnEpoch = Callable[[list[dict[str, Any] | None]], None]

#: How far a packed member's first epoch may be from the same configuration trained alone:
#: relative difference of the mean training loss, absolute difference of test accuracy
#: (a fraction). float32 on the CPU differs only by summation order; bf16 autocast on a GPU
#: rounds every product to 8 bits of mantissa (2^-8 = 0.4%), which a few hundred steps of
#: SGD amplify into a different but statistically equal trajectory.
TOLERANCES: dict[str, dict[str, float]] = {
    "cpu": {"train_loss_rel": 1e-3, "test_acc_abs": 0.01},
    "cuda": {"train_loss_rel": 0.05, "test_acc_abs": 0.05},
}


@functools.cache
def pack_runner() -> Callable[..., list[Rows]] | None:
    """``studies.training.pack.run_pack``, or None while it (or ``radam.packed``, which it
    needs) is not in the tree. Any other import error is a bug and propagates."""
    try:
        from studies.training.pack import run_pack  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name in PACK_MODULES:
            return None
        raise
    runner: Callable[..., list[Rows]] = run_pack
    return runner


def packed() -> bool:
    """Whether ``train_pack`` trains packed (else one configuration at a time)."""
    return pack_runner() is not None


def train_pack(
    spec: StudySpec,
    configs: Sequence[TrialConfig],
    *,
    data_dir: str | None,
    gpus: float,
    threads: int | None = None,
    epochs: int | None = None,
    resume_from: Mapping[str, Any] | None = None,
    on_epoch: OnEpoch | None = None,
) -> tuple[list[Rows], dict[str, Any] | None]:
    """Train ``configs`` of ``spec`` as one pack up to ``epochs``; return each member's
    per-epoch rows (``studies.training.trial.EPOCH_KEYS``) and the pack's state after the last
    epoch (for ``resume_from``)."""
    run_pack = pack_runner()
    if run_pack is not None:
        last: list[Any] = []

        def hook(rows: list[dict[str, Any] | None], state: Any) -> None:
            last[:] = [state]
            if on_epoch is not None:
                on_epoch(rows)

        histories: list[Rows] = run_pack(
            spec,
            configs,
            data_dir=data_dir,
            threads=threads,
            gpus=gpus,
            resume_from=resume_from,
            on_epoch=hook,
            epochs=epochs,
        )
        state = last[0].state_dict() if last else None
        return histories, state
    return _one_at_a_time(
        spec,
        configs,
        data_dir=data_dir,
        gpus=gpus,
        threads=threads,
        epochs=epochs,
        resume_from=resume_from,
        on_epoch=on_epoch,
    )


def _one_at_a_time(
    spec: StudySpec,
    configs: Sequence[TrialConfig],
    *,
    data_dir: str | None,
    gpus: float,
    threads: int | None,
    epochs: int | None,
    resume_from: Mapping[str, Any] | None,
    on_epoch: OnEpoch | None,
) -> tuple[list[Rows], dict[str, Any] | None]:
    from studies.training.trial import run_trial

    print(
        "packing: studies.training.pack is not in this tree; training the configurations one at a "
        "time (results say packed: false)",
        file=sys.stderr,
    )
    states: list[Any] = list(resume_from["members"]) if resume_from else [None] * len(configs)
    start = int(resume_from["epoch"]) if resume_from else 0
    histories: list[Rows] = [[] for _ in configs]
    stopped = [False] * len(configs)
    for epoch in range(start + 1, (epochs or spec.epochs) + 1):
        rows: list[dict[str, Any] | None] = []
        for k, config in enumerate(configs):
            if stopped[k]:
                rows.append(None)
                continue
            captured: list[dict[str, Any]] = []

            def keep(_metrics: dict[str, Any], state: Any, into: list[Any] = captured) -> None:
                into.append(state.state_dict())

            got = run_trial(
                spec,
                config,
                data_dir=data_dir,
                threads=threads,
                gpus=gpus,
                resume_from=states[k],
                on_epoch=keep,
                epochs=epoch,
            )
            states[k] = captured[-1] if captured else states[k]
            row = got[-1] if got else None
            if row is None or row.get("diverged"):
                stopped[k] = True
            if row is not None:
                histories[k].append(row)
            rows.append(row)
        if on_epoch is not None:
            on_epoch(rows)
    return histories, {"epoch": epochs or spec.epochs, "members": states}


def _train_alone(
    spec: StudySpec,
    config: TrialConfig,
    *,
    data_dir: str | None,
    gpus: float,
    threads: int | None,
    device_type: str,
) -> tuple[list[dict[str, Any]], float | None]:
    """``config`` trained alone for two epochs (one if the spec has one): its rows, and the
    wall time of the warm second epoch (training and evaluation; None with one epoch)."""
    import torch

    from studies.training.trial import run_trial

    ends: list[float] = []

    def clock(_metrics: Mapping[str, Any], _state: object) -> None:
        if device_type == "cuda":  # CUDA runs asynchronously: time what it has finished
            torch.cuda.synchronize()
        ends.append(time.perf_counter())

    rows = run_trial(
        spec,
        config,
        data_dir=data_dir,
        gpus=gpus,
        threads=threads,
        epochs=min(2, spec.epochs),
        on_epoch=clock,
    )
    return rows, ends[1] - ends[0] if len(ends) > 1 else None


def parity_members(spec: StudySpec) -> list[TrialConfig]:
    """One configuration per optimizer (its middle learning rate, first warmup and seed):
    every optimizer kind of the pack is compared."""
    grid = spec.trial_configs()
    members = []
    for name in spec.optimizers:
        lrs = spec.lrs_for(name)
        mid = sorted(lrs)[(len(lrs) - 1) // 2]  # the lower middle: far from divergence
        members.append(next(c for c in grid if c.optimizer == name and c.lr == mid))
    return members


def parity_check(
    spec: StudySpec,
    configs: Sequence[TrialConfig],
    *,
    data_dir: str | None,
    gpus: float,
    device_type: str,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train ``configs`` one epoch packed and two epochs each alone; compare their first
    epochs. The second epoch alone (warm: kernels chosen, caches filled) is timed: what one
    trial at a time gets from the device, the baseline of ``throughput.json``'s speed-up."""
    together, _ = train_pack(spec, configs, data_dir=data_dir, gpus=gpus, threads=threads, epochs=1)
    tolerance = TOLERANCES["cuda" if device_type == "cuda" else "cpu"]
    members = []
    for config, rows in zip(configs, together, strict=True):
        alone, warm_seconds = _train_alone(
            spec, config, data_dir=data_dir, gpus=gpus, threads=threads, device_type=device_type
        )
        a, b = rows[0], alone[0]
        loss_rel = abs(a["train_loss"] - b["train_loss"]) / max(abs(b["train_loss"]), 1e-12)
        acc_abs = abs(a["test_acc"] - b["test_acc"])
        ok = (
            math.isfinite(loss_rel)
            and loss_rel <= tolerance["train_loss_rel"]
            and math.isfinite(acc_abs)
            and acc_abs <= tolerance["test_acc_abs"]
        )
        members.append(
            {
                "trial_id": config.key,
                "packed": {"train_loss": a["train_loss"], "test_acc": a["test_acc"]},
                "alone": {"train_loss": b["train_loss"], "test_acc": b["test_acc"]},
                "train_loss_rel_diff": loss_rel,
                "test_acc_abs_diff": acc_abs,
                "ok": ok,
                "alone_epoch_seconds": warm_seconds,
            }
        )
    return {
        "packed": packed(),
        "epochs": 1,
        "tolerance": tolerance,
        "members": members,
        "ok": all(m["ok"] for m in members),
    }
