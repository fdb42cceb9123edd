"""Packed trials: K configurations of one study trained as one program on one device.

A pack is K grid points that share the dataset, model, batch size, epochs and schedule shape,
and differ in optimizer, learning rate, warmup and seed. Their K networks are stacked
(``torch.func.stack_module_state``) and run as one vmapped ``functional_call`` per iteration
on a ``[K, batch, ...]`` input; one backward pass gives every member its own gradients (the
members share no parameter, so the gradient of the sum of their losses is, slice by slice,
each member's own); ``radam.packed.PackedOptimizer`` steps the K members with their own
optimizers and learning rates. BatchNorm runs in train mode with each member's running
statistics updated in place on its slice of the stacked buffers.

What it claims (checked in tests/studies/test_pack.py, float64 on the CPU to 1e-9 relative
over two epochs for ``resnet20``, ``cnn`` and ``mlp`` with warmups; float32 to 1e-4):

- Member k's per-epoch curve is the one ``run_trial(spec, configs[k])`` gives: the same
  initialisation (``studies.trainable.init_model``, from its own seed), the same batches and
  augmentation (``studies.data.batches`` with its own generator), the same lr schedule
  (``trial_schedule``: warmup x step decay, per member), the same divergence rule.
- A member that diverges is frozen (its parameters, optimizer state and BatchNorm statistics
  stay as they were at its divergence) and recorded as diverged at its epoch; the others go on.
  A member whose setup raises (e.g. a linear warmup of 0 steps) is recorded failed with its
  error and frozen from the start; the others train. Only when every member fails does
  ``run_pack`` raise.
- ``PackState.state_dict()`` holds every member's state (parameters, buffers, optimizer,
  generator, status); ``resume_from`` continues each member after the pack's last epoch and
  gives the curve of an uninterrupted run.

``train_seconds`` of a member is its share of the pack's time: each epoch's time divided
among the members that trained in it (the members' figures sum to the pack's time).

Imports only torch, numpy, pydantic and the project's radam/ and studies/ modules that import
none of ray/mlflow/optuna (so it runs on a machine that has only torch).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from radam.packed import MemberHparams, PackedOptimizer
from studies.data import Dataset, batches
from studies.spec import StudySpec, TrialConfig
from studies.trainable import (
    DIVERGENCE_CHECK_EVERY,
    EVAL_BATCH_SIZE,
    as_float,
    autocast_for,
    cast_dataset,
    get_dataset,
    init_model,
    loss_dtype,
    node_name,
    pick_device,
    trial_schedule,
)

MemberStatus = Literal["running", "finished", "diverged", "failed"]
OnPackEpoch = Callable[[list[dict[str, Any] | None], "PackState"], None]

STATE_FILE = "pack_state.pt"

# The most members ``pack_size: auto`` puts in one pack (bench/packing.py measured the gain
# per member flattening out by then on 2 CPU cores).
AUTO_PACK_MAX_CPU = 16
AUTO_PACK_MAX_GPU = 64


@dataclasses.dataclass
class Member:
    """One configuration of a pack and where it stands."""

    config: TrialConfig
    status: MemberStatus = "running"
    error: str | None = None  # why a failed member failed
    last_finite_acc: float | None = None
    train_seconds: float = 0.0  # its share of the pack's time

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(),
            "status": self.status,
            "error": self.error,
            "last_finite_acc": self.last_finite_acc,
            "train_seconds": self.train_seconds,
        }


@dataclasses.dataclass
class PackState:
    """Everything a pack needs to continue after ``epoch`` (1-based, 0 before the first)."""

    base: nn.Module  # the network's structure on the meta device; its weights are below
    params: dict[str, Tensor]  # name -> [K, *shape] leaf
    buffers: dict[str, Tensor]  # name -> [K, *shape]
    optimizer: PackedOptimizer
    schedules: list[Callable[[int], float]]
    generators: list[torch.Generator]
    members: list[Member]
    epoch: int = 0
    step: int = 0  # optimizer updates so far (LambdaLR's count)
    frozen_buffers: dict[int, dict[str, Tensor]] = dataclasses.field(default_factory=dict)
    chunk: int | None = None  # members per forward/backward pass; None: all at once
    chunk_settled: bool = False  # a step went through with this chunk (no more back-off)

    @property
    def size(self) -> int:
        return len(self.members)

    def running(self) -> list[int]:
        """Members still training (not stopped, not frozen mid-epoch)."""
        return [
            k
            for k, m in enumerate(self.members)
            if m.status == "running" and k not in self.frozen_buffers
        ]

    def freeze(self, k: int) -> None:
        """Member k's optimizer no longer updates it and its buffers are kept as they are now
        (forward passes in train mode would move its BatchNorm statistics)."""
        if k not in self.frozen_buffers:
            self.optimizer.freeze(k)
            self.frozen_buffers[k] = {n: b[k].clone() for n, b in self.buffers.items()}

    def stop(self, k: int, status: MemberStatus, error: str | None = None) -> None:
        self.members[k].status = status
        self.members[k].error = error
        self.freeze(k)

    def restore_frozen(self) -> None:
        for k, saved in self.frozen_buffers.items():
            for name, value in saved.items():
                self.buffers[name][k].copy_(value)

    def member_model_state(self, k: int) -> dict[str, Tensor]:
        """Member k's network as ``model.state_dict()`` would give it (parameters, buffers)."""
        out = {n: p.detach()[k].clone() for n, p in self.params.items()}
        out.update({n: b[k].clone() for n, b in self.buffers.items()})
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "keys": [m.config.key for m in self.members],
            "members": [m.to_dict() for m in self.members],
            "params": {n: p.detach().clone() for n, p in self.params.items()},
            "buffers": {n: b.clone() for n, b in self.buffers.items()},
            "frozen_buffers": copy.deepcopy(self.frozen_buffers),
            "optimizer": self.optimizer.state_dict(),
            "generators": [g.get_state() for g in self.generators],
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "numpy_rng": np.random.get_state(),
            "epoch": self.epoch,
            "step": self.step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        keys = [m.config.key for m in self.members]
        if list(state["keys"]) != keys:
            raise ValueError(f"the saved pack holds {state['keys']}, not {keys}")
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(state["params"][name])
            for name, b in self.buffers.items():
                b.copy_(state["buffers"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        for g, saved in zip(self.generators, state["generators"], strict=True):
            g.set_state(saved)
        for member, saved in zip(self.members, state["members"], strict=True):
            member.status = saved["status"]
            member.error = saved["error"]
            member.last_finite_acc = saved["last_finite_acc"]
            member.train_seconds = float(saved["train_seconds"])
        self.frozen_buffers = {int(k): dict(v) for k, v in state["frozen_buffers"].items()}
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        np.random.set_state(state["numpy_rng"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])

    def save(self, directory: str | os.PathLike[str]) -> Path:
        path = Path(directory) / STATE_FILE
        torch.save(self.state_dict(), path)
        return path

    @staticmethod
    def read(directory: str | os.PathLike[str]) -> dict[str, Any]:
        # weights_only=False: the state holds Python's and numpy's RNG tuples; the file is
        # one this pack wrote into its own storage.
        state: dict[str, Any] = torch.load(
            Path(directory) / STATE_FILE, map_location="cpu", weights_only=False
        )
        return state


def member_hparams(spec: StudySpec, cfg: TrialConfig) -> MemberHparams:
    return MemberHparams(
        name=cfg.optimizer,
        lr=cfg.lr,
        weight_decay=spec.weight_decay,
        momentum=spec.momentum,
        betas=spec.betas,
        eps=spec.eps,
    )


def build_pack(
    spec: StudySpec,
    configs: Sequence[TrialConfig],
    ds: Dataset,
    *,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> PackState:
    """The pack's stacked networks, optimizer, schedules and generators, each member
    initialised as ``run_trial`` would initialise it; members whose setup raises are failed."""
    if not configs:
        raise ValueError("a pack needs at least one configuration")
    models: list[nn.Module | None] = []
    generators: list[torch.Generator] = []
    schedules: list[Callable[[int], float]] = []
    members = [Member(cfg) for cfg in configs]
    for member in members:
        try:
            schedule = trial_schedule(spec, member.config, ds)
            model, generator = init_model(spec, member.config, ds, device=device, dtype=dtype)
        except Exception as exc:  # this member's own fault: the others go on
            member.status, member.error = "failed", f"{type(exc).__name__}: {exc}"
            models.append(None)
            generators.append(torch.Generator())
            schedules.append(lambda step: 1.0)
            continue
        models.append(model)
        generators.append(generator)
        schedules.append(schedule)
    good = [m for m in models if m is not None]
    if not good:
        errors = "; ".join(f"{m.config.key}: {m.error}" for m in members)
        raise RuntimeError(f"every member of the pack failed to start: {errors}")
    # A failed member's slot holds a copy of a good network (the stack needs one) and stays
    # frozen; its optimizer (sgd, lr 1) is a placeholder that never steps.
    stacked = [m if m is not None else copy.deepcopy(good[0]) for m in models]
    params, buffers = stack_module_state(stacked)
    hparams = [
        member_hparams(spec, mem.config) if mem.status == "running" else MemberHparams("sgd", 1.0)
        for mem in members
    ]
    optimizer = PackedOptimizer(list(params.values()), hparams)
    base = copy.deepcopy(good[0]).to("meta")
    state = PackState(base, params, buffers, optimizer, schedules, generators, members)
    for k, member in enumerate(members):
        if member.status == "failed":
            state.stop(k, "failed", member.error)
    return state


def run_pack(
    spec: StudySpec,
    configs: Sequence[TrialConfig],
    *,
    data_dir: str | None = None,
    threads: int | None = None,  # CPU threads for torch; None: leave torch's setting
    gpus: float = 0.0,  # > 0: CUDA when there is one
    resume_from: Mapping[str, Any] | None = None,  # a PackState.state_dict()
    on_epoch: OnPackEpoch | None = None,
    epochs: int | None = None,  # stop after this epoch (default: spec.epochs)
    dtype: torch.dtype | None = None,  # parameters and images; None: float32
    chunk: int | None = None,  # members per pass; None: default_chunk's choice
) -> list[list[dict[str, Any]]]:
    """Train the pack ``configs`` of ``spec``; return, per member in ``configs`` order, the
    per-epoch metrics (``EPOCH_KEYS``) of the epochs run here (after ``resume_from``'s)."""
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    device = pick_device(gpus)
    ds = cast_dataset(get_dataset(spec, data_dir=data_dir, device=device), dtype)
    state = build_pack(spec, configs, ds, device=device, dtype=dtype)
    if resume_from is not None:
        state.load_state_dict(resume_from)
    state.chunk = chunk if chunk is not None else default_chunk(spec, ds, device)
    node = node_name()
    check_every = 1 if device.type == "cpu" else DIVERGENCE_CHECK_EVERY
    last = epochs or spec.epochs
    histories: list[list[dict[str, Any]]] = [[] for _ in configs]
    for epoch in range(state.epoch + 1, last + 1):
        trained = state.running()
        if not trained:
            break
        started = time.perf_counter()
        train_loss, lrs, diverged = _train_epoch(
            state, ds, spec, device=device, check_every=check_every
        )
        evaluated = [k for k in trained if not diverged[k]]
        tested = _evaluate(state, evaluated, ds, device=device)
        share = (time.perf_counter() - started) / len(trained)
        rows: list[dict[str, Any] | None] = [None] * state.size
        for k in trained:
            member = state.members[k]
            test_loss, test_acc = tested.get(k, (math.nan, math.nan))
            if k in tested and not math.isfinite(test_loss):  # finite loss, exploding logits
                diverged[k] = True
            if math.isfinite(test_acc):
                member.last_finite_acc = test_acc
            member.train_seconds += share
            if diverged[k]:
                state.stop(k, "diverged")
            elif epoch == spec.epochs:
                member.status = "finished"
            rows[k] = {
                "epoch": epoch,
                "train_loss": train_loss[k],
                "test_loss": test_loss,
                "test_acc": test_acc,
                "lr": lrs[k],
                "diverged": diverged[k],
                "objective": member.last_finite_acc if member.last_finite_acc is not None else 0.0,
                "node": node,
                "train_seconds": member.train_seconds,
            }
            histories[k].append(rows[k])  # type: ignore[arg-type]
        state.epoch = epoch
        if on_epoch is not None:
            on_epoch(rows, state)
    return histories


def default_chunk(spec: StudySpec, ds: Dataset, device: torch.device) -> int | None:
    """Members per forward/backward pass. On a GPU all of them (None), halved on
    out-of-memory. On the CPU all of them for the MLP and 8x8 images, where one batched
    matmul beats K small ones (bench/packing.py: 1.5x at K=16 on digits), but one at a time
    for convolutions on larger images: vmapped convolutions run as grouped ones there, and
    the max-pooling after them on a strided layout, which measured ~1.4x slower than K
    separate passes (the CNN on 28x28 Fashion-MNIST, K=9; bench/README.md)."""
    if device.type != "cpu" or spec.model == "mlp" or ds.image_size <= 8:
        return None
    return 1


def _member_loss(base: nn.Module) -> Callable[..., Tensor]:
    def loss(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        logits = as_float(functional_call(base, (params, buffers), (x,)))
        return nn.functional.cross_entropy(logits, y)

    return loss


def _train_epoch(
    state: PackState, ds: Dataset, spec: StudySpec, *, device: torch.device, check_every: int
) -> tuple[list[float], list[float], list[bool]]:
    """One epoch of every running member; per member: (mean training loss so far, the last
    lr, whether it diverged). A member that diverges is frozen at once; the others go on."""
    limit = spec.divergence_loss if spec.divergence_loss is not None else math.inf
    size = state.size
    trained = state.running()
    dtype = loss_dtype(ds)
    loss_sum = torch.zeros(size, device=device, dtype=dtype)
    loss_max = torch.zeros(size, device=device, dtype=dtype)  # NaN propagates
    stopped: dict[int, float] = {}  # member -> its mean loss over the steps it trained
    last_lr = [state.members[k].config.lr * state.schedules[k](state.step) for k in range(size)]
    streams = [
        batches(ds, batch_size=spec.batch_size, generator=state.generators[k]) for k in trained
    ]
    state.base.train()
    steps = 0
    for drawn in zip(*streams, strict=True):
        # A stopped member's slot takes the first trained member's batch: its output is
        # ignored and its weights and buffers are not touched.
        batch = dict(zip(trained, drawn, strict=True))
        xs = torch.stack([batch.get(k, drawn[0])[0] for k in range(size)])
        ys = torch.stack([batch.get(k, drawn[0])[1] for k in range(size)])
        active = state.running()
        lrs = [state.members[k].config.lr * state.schedules[k](state.step) for k in range(size)]
        losses = _gradients(state, xs, ys, device=device)
        state.optimizer.step(lrs)
        state.restore_frozen()
        state.step += 1
        steps += 1
        detached = losses.detach().to(dtype)
        loss_sum += detached
        loss_max = torch.maximum(loss_max, detached)
        for k in active:
            last_lr[k] = lrs[k]
        if steps % check_every == 0:
            worst = loss_max.tolist()
            for k in active:
                if not math.isfinite(worst[k]) or worst[k] > limit:
                    stopped[k] = float(loss_sum[k].item()) / steps
                    state.freeze(k)
            if not state.running():
                break
    worst, sums = loss_max.tolist(), loss_sum.tolist()
    train_loss, diverged = [math.nan] * size, [False] * size
    for k in trained:
        if k in stopped:
            train_loss[k], diverged[k] = stopped[k], True
        else:
            train_loss[k] = sums[k] / max(steps, 1)
            diverged[k] = not math.isfinite(worst[k]) or worst[k] > limit
    return train_loss, last_lr, diverged


def _gradients(state: PackState, xs: Tensor, ys: Tensor, *, device: torch.device) -> Tensor:
    """Every member's loss on its batch ([K]) and its gradients in the stacked leaves' grads,
    ``state.chunk`` members per forward/backward pass. The members are independent, so a
    chunk's backward fills only its members' slices (and adds exact zeros elsewhere): the
    gradients do not depend on the chunking. Until a step has gone through (``chunk_settled``)
    an out-of-memory error halves the chunk and the step is tried again, from the
    BatchNorm statistics it started with: the back-off that finds how many members fit."""
    snapshot = None if state.chunk_settled else {n: b.clone() for n, b in state.buffers.items()}
    step_loss = vmap(_member_loss(state.base), randomness="different")
    while True:
        state.optimizer.zero_grad(set_to_none=True)
        chunk = state.chunk or state.size
        try:
            parts: list[Tensor] = []
            for a in range(0, state.size, chunk):
                b = min(state.size, a + chunk)
                if all(k in state.frozen_buffers for k in range(a, b)):
                    # stopped members only: nothing of theirs is used, skip the pass
                    parts.append(torch.full((b - a,), math.nan, device=device, dtype=xs.dtype))
                    continue
                params = {n: t[a:b] for n, t in state.params.items()}
                buffers = {n: t[a:b] for n, t in state.buffers.items()}  # views: updated in place
                with autocast_for(device):
                    losses = step_loss(params, buffers, xs[a:b], ys[a:b])
                losses.sum().backward()  # type: ignore[no-untyped-call]
                parts.append(losses.detach())
        except torch.OutOfMemoryError:
            if snapshot is None or chunk == 1:
                raise
            state.chunk = chunk // 2
            parts = []
            with torch.no_grad():
                for name, saved in snapshot.items():
                    state.buffers[name].copy_(saved)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        state.chunk_settled = True
        return torch.cat(parts)


def _evaluate(
    state: PackState, members: list[int], ds: Dataset, *, device: torch.device
) -> dict[int, tuple[float, float]]:
    """(mean cross-entropy, accuracy) on the whole test set for each of ``members``."""
    if not members:
        return {}
    state.base.eval()

    def scores(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        logits = as_float(functional_call(state.base, (p, b), (x,)))
        loss = nn.functional.cross_entropy(logits, y, reduction="sum").to(torch.float64)
        correct = (logits.argmax(dim=1) == y).sum().to(torch.float64)
        return torch.stack([loss, correct])

    per_batch = vmap(scores, in_dims=(0, 0, None, None))
    totals = torch.zeros((len(members), 2), device=device, dtype=torch.float64)
    chunk = state.chunk or state.size
    # EVAL_BATCH_SIZE test images per pass in all (not per member): K members' activations
    # of a 1000-image batch would take K times a trial's memory (GBs for the CNN at K=9).
    batch_size = max(1, EVAL_BATCH_SIZE // min(chunk, len(members)))
    with torch.inference_mode(), autocast_for(device):
        for a in range(0, len(members), chunk):
            index = torch.tensor(members[a : a + chunk], device=device)
            params = {n: p.detach().index_select(0, index) for n, p in state.params.items()}
            buffers = {n: b.index_select(0, index) for n, b in state.buffers.items()}
            for x, y in batches(ds, batch_size=batch_size, train=False):
                totals[a : a + chunk] += per_batch(params, buffers, x, y)
    state.base.train()
    n = ds.num_test
    out = totals.tolist()
    return {k: (out[i][0] / n, int(out[i][1]) / n) for i, k in enumerate(members)}


# --- the Tune function trainable's side (no Ray import here) ---------------------------------


class PackSession(Protocol):
    """How a pack reports and finds its last checkpoint (Ray Tune's, in the runner)."""

    def report(self, rows: list[dict[str, Any] | None], state: PackState) -> None: ...

    def restore(self) -> dict[str, Any] | None: ...


def pack_result(rows: Sequence[dict[str, Any] | None], state: PackState) -> dict[str, Any]:
    """One Tune result for a pack's epoch: ``members`` holds, per member, its key, status
    (running/finished/diverged/failed), error and this epoch's row (None: no row, it had
    stopped); ``objective`` is the best member's, what a grid's best-trial pick reads."""
    members = [
        {"key": m.config.key, "status": m.status, "error": m.error, "row": row}
        for m, row in zip(state.members, rows, strict=True)
    ]
    objectives = [row["objective"] for row in rows if row is not None]
    return {
        "epoch": state.epoch,
        "objective": max(objectives, default=0.0),
        "members": members,
    }


def train_pack(config: Mapping[str, Any], *, session: PackSession | None = None) -> None:
    """Run the pack of a Tune ``config`` (``spec``: the study's JSON dict; ``pack``: the
    members' ``TrialConfig`` dicts; ``data_dir``), reporting each epoch through ``session``
    and resuming from its last checkpoint."""
    spec = StudySpec.from_json_cached(config["spec"])  # admitted on entry
    configs = [TrialConfig.model_validate(c) for c in config["pack"]]
    resources = spec.resources_per_trial
    run_pack(
        spec,
        configs,
        data_dir=config.get("data_dir"),
        threads=max(1, int(resources.cpu)),
        gpus=resources.gpu,
        resume_from=session.restore() if session is not None else None,
        on_epoch=session.report if session is not None else None,
    )


def plan_packs(configs: Sequence[TrialConfig], pack_size: int) -> list[list[TrialConfig]]:
    """``configs`` in packs of at most ``pack_size``, as even as can be (36 in packs of at most
    16: 12, 12, 12), in grid order. One study's grid points share everything a pack must
    share (dataset, model, batch size, epochs, schedule shape), so any split is a valid one."""
    if pack_size < 1:
        raise ValueError(f"pack_size must be >= 1, got {pack_size}")
    if not configs:
        return []
    count = math.ceil(len(configs) / pack_size)
    size, extra = divmod(len(configs), count)
    packs: list[list[TrialConfig]] = []
    start = 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        packs.append(list(configs[start:end]))
        start = end
    return packs


def auto_pack_size(pending: int, *, slots: int, gpu: bool) -> int:
    """``pack_size: auto``: the pending configurations spread evenly over the ``slots`` trials
    the cluster runs at once, in as few rounds as the cap allows (``AUTO_PACK_MAX_GPU``
    members on a GPU, where ``run_pack`` then halves the members per pass until they fit in
    memory; ``AUTO_PACK_MAX_CPU`` on CPUs): per-trial costs are paid once per pack, and no
    slot idles while another trains a last, lone pack (36 on 2 slots: 2 packs of 18 on a
    GPU, 4 of 9 on CPUs)."""
    if pending < 1:
        return 1
    slots = max(1, slots)
    cap = AUTO_PACK_MAX_GPU if gpu else AUTO_PACK_MAX_CPU
    packs = slots * math.ceil(pending / (slots * cap))
    return max(1, math.ceil(pending / packs))
