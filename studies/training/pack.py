"""Packed trials: K configurations of one study trained as one program on one device.

A pack is K grid points that share the dataset, model, batch size, epochs and schedule shape,
and differ in optimizer, learning rate, warmup and seed. Their K networks are stacked
(``torch.func.stack_module_state``; ``studies.training.pack_state``) and run as one program per
iteration on a ``[K, batch, ...]`` input, by one of two roads: ``layers`` (the default where
it applies), one horizontally fused network (``studies.training.fused``: grouped convolutions, per
member BatchNorm channels, batched matmuls, as HFTA does), or ``vmap``, ``torch.func.vmap``
over ``functional_call``. One backward pass gives every member its own gradients (the
members share no parameter, so the gradient of the sum of their losses is, slice by slice,
each member's own); ``radam.packed.PackedOptimizer`` steps the K members with their own
optimizers and learning rates. BatchNorm runs in train mode with each member's running
statistics updated in place on its slice of the stacked buffers.

What it claims (checked in tests/studies/training/test_pack.py, float64 on the CPU to 1e-9 relative
over two epochs for ``resnet20``, ``cnn`` and ``mlp`` with warmups; float32 to 1e-4):

- Member k's per-epoch curve is the one ``run_trial(spec, configs[k])`` gives: the same
  initialisation (``studies.training.trial_state.init_model``, from its own seed), the same
  batches and augmentation (``studies.workloads.batching.batches`` with its own generator),
  the same lr schedule (``trial_schedule``: warmup x step decay, per member), the same
  divergence rule.
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

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from studies.spec import StudySpec, TrialConfig
from studies.training import fused
from studies.training.pack_state import Member, PackState, Road, build_pack
from studies.training.trial import (
    DIVERGENCE_CHECK_EVERY,
    EVAL_BATCH_SIZE,
    as_float,
    autocast_for,
    cast_dataset,
    get_dataset,
    loss_dtype,
    node_name,
    pick_device,
)
from studies.workloads.batching import batches
from studies.workloads.dataset import Dataset
from studies.workloads.registry import get_workload

OnPackEpoch = Callable[[list[dict[str, Any] | None], PackState], None]

__all__ = [
    "Member",
    "OnPackEpoch",
    "PackState",
    "Road",
    "default_chunk",
    "default_road",
    "run_pack",
]


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
    road: Road | None = None,  # None: default_road's choice
) -> list[list[dict[str, Any]]]:
    """Train the pack ``configs`` of ``spec``; return, per member in ``configs`` order, the
    per-epoch metrics (``EPOCH_KEYS``) of the epochs run here (after ``resume_from``'s)."""
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    device = pick_device(gpus)
    metric = get_workload(spec.dataset).metric
    ds = cast_dataset(get_dataset(spec, data_dir=data_dir, device=device), dtype)
    state = build_pack(spec, configs, ds, device=device, dtype=dtype)
    if resume_from is not None:
        state.load_state_dict(resume_from)
    state.road = road if road is not None else default_road(state.base)
    if state.road == "layers" and not fused.fusable(state.base):
        raise ValueError(f"{spec.model} cannot run as fused layers; use road='vmap'")
    state.channels_last = device.type == "cuda" or ds.image_size > 8
    state.chunk = chunk if chunk is not None else default_chunk(spec, ds, device, state.road)
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
                metric.name: test_acc,
                "lr": lrs[k],
                "diverged": diverged[k],
                "objective": metric.sign
                * (
                    member.last_finite_acc
                    if member.last_finite_acc is not None
                    else metric.failed_value
                ),
                "node": node,
                "train_seconds": member.train_seconds,
            }
            histories[k].append(rows[k])  # type: ignore[arg-type]
        state.epoch = epoch
        if on_epoch is not None:
            on_epoch(rows, state)
    return histories


def default_road(base: nn.Module) -> Road:
    """Fused layers wherever ``studies.training.fused`` can fuse the network (every model of the
    project but ResNet-20 with option-A shortcuts), else vmap. bench/packing.py measured the
    fused layers faster than vmap on the CPU, or level with it (the MLP at K=16), for every
    model and K tried (bench/README.md)."""
    return "layers" if fused.fusable(base) else "vmap"


def default_chunk(
    spec: StudySpec, ds: Dataset, device: torch.device, road: Road = "layers"
) -> int | None:
    """Members per forward/backward pass. On a GPU all of them (None), halved on
    out-of-memory; on the CPU all of them with fused layers. With vmap on the CPU, all of
    them for the MLP and 8x8 images, but one at a time for convolutions on larger images:
    vmapped convolutions run as grouped ones there, and the max-pooling after them on a
    strided layout, which measured ~1.4x slower than K separate passes (the CNN on 28x28
    Fashion-MNIST, K=9; bench/README.md)."""
    if device.type != "cpu" or road == "layers" or spec.model == "mlp" or ds.image_size <= 8:
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
    state.set_mode(train=True)
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
                    losses = _chunk_losses(state, params, buffers, xs[a:b], ys[a:b])
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


def _chunk_losses(
    state: PackState, params: dict[str, Tensor], buffers: dict[str, Tensor], xs: Tensor, ys: Tensor
) -> Tensor:
    """The losses ([members]) of one pass over members with stacked ``params`` and
    ``buffers`` on their own batches ``xs`` ([members, batch, ...]) and labels ``ys``."""
    if state.road == "vmap":
        return vmap(_member_loss(state.base), randomness="different")(params, buffers, xs, ys)
    members = xs.shape[0]
    net = state.fused_net(members)
    inputs = fused.to_fused_layout(xs, channels_last=state.channels_last)
    logits = as_float(functional_call(net, fused.fused_views(net, params, buffers), (inputs,)))
    return fused.member_losses(fused.member_logits(logits, members), ys)


def _chunk_scores(
    state: PackState, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor
) -> Tensor:
    """Per member ([members, 2]): the summed cross-entropy and the count of correct answers
    on one test batch ``x`` shared by every member."""
    if state.road == "vmap":

        def scores(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            logits = as_float(functional_call(state.base, (p, b), (x,)))
            loss = nn.functional.cross_entropy(logits, y, reduction="sum").to(torch.float64)
            correct = (logits.argmax(dim=1) == y).sum().to(torch.float64)
            return torch.stack([loss, correct])

        per_batch: Tensor = vmap(scores, in_dims=(0, 0, None, None))(params, buffers, x, y)
        return per_batch
    members = next(iter(params.values())).shape[0]
    net = state.fused_net(members)
    inputs = fused.shared_batch_layout(x, members, channels_last=state.channels_last)
    out = functional_call(net, fused.fused_views(net, params, buffers), (inputs,))
    logits = fused.member_logits(as_float(out), members)  # [K, batch, classes]
    labels = y.expand(members, -1)
    loss = nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none"
    )
    loss_sums = loss.reshape(members, -1).sum(dim=1).to(torch.float64)
    correct = (logits.argmax(dim=2) == labels).sum(dim=1).to(torch.float64)
    return torch.stack([loss_sums, correct], dim=1)


def _evaluate(
    state: PackState, members: list[int], ds: Dataset, *, device: torch.device
) -> dict[int, tuple[float, float]]:
    """(mean cross-entropy, accuracy) on the whole test set for each of ``members``."""
    if not members:
        return {}
    state.set_mode(train=False)
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
                totals[a : a + chunk] += _chunk_scores(state, params, buffers, x, y)
    state.set_mode(train=True)
    n = ds.num_test
    out = totals.tolist()
    return {k: (out[i][0] / n, int(out[i][1]) / n) for i, k in enumerate(members)}
