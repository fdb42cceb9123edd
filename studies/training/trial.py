"""One trial: train a model with one optimizer, learning rate, warmup and seed; evaluate on the
test set after every epoch.

What it claims (checked in tests/studies/training/test_trial.py):

- Everything is seeded from the trial's seed: the model's initialisation, the batch order and
  the augmentation (one ``torch.Generator``), Python's and numpy's RNGs. Two runs of a trial
  on the same device give the same curve; a run resumed from a checkpoint gives the same
  curve as an uninterrupted one.
- The optimizer comes from ``radam.factory.make_optimizer`` (the one factory shared with the
  optimizer package) and the learning rate follows ``radam.schedules.lr_lambda`` (warmup x
  step decay), stepped once per iteration.
- After each epoch ``on_epoch(metrics, state)`` is called with ``EPOCH_KEYS`` and the trial's
  full state (model, optimizer, scheduler, RNGs, epoch), which the runner turns into a Ray Tune
  report and checkpoint; ``resume_from`` restarts from such a state after its epoch.
- A batch loss that goes non-finite, or above ``spec.divergence_loss`` (1e4 nats by default:
  ReLU networks driven by a huge learning rate, e.g. Adam at lr 10, blow up to losses of 1e6
  and more, then die with finite losses, never NaN), stops the trial at once (checked every
  iteration on the CPU, every ``DIVERGENCE_CHECK_EVERY`` iterations on a GPU, where each check
  waits for the device): the last report carries ``diverged=True``, ``train_loss`` the mean
  of the epoch's losses so far, and ``test_acc``/``test_loss`` NaN (not evaluated);
  ``objective`` keeps the last finite test accuracy (0 if none), the accuracy the trial had.
  That is data, not an error.
- On a GPU: bf16 autocast and channels_last; on the CPU: ``torch.set_num_threads(threads)``.

The Tune function trainable (``trainables.train_trial``) is built on the plain ``run_trial``;
``studies.runner`` (the only package that imports ``ray.tune``) supplies the session that
reports and checkpoints through Ray Tune. The trial's state and how it is built from its seed:
``trial_state``.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from studies.spec import StudySpec, TrialConfig
from studies.training.trial_state import TrialState, build_state
from studies.workloads.batching import batches
from studies.workloads.dataset import Dataset
from studies.workloads.interface import Workload
from studies.workloads.registry import get_workload

#: What every per-epoch report holds.
EPOCH_KEYS: tuple[str, ...] = (
    "epoch",  # 1-based, the MLflow step
    "train_loss",  # mean over the epoch's iterations
    "test_loss",
    "test_acc",  # fraction in [0, 1]; a workload with another metric: that one's name instead
    "lr",  # the lr of the epoch's last iteration
    "diverged",
    "objective",  # the metric (negated when lower is better), or its last finite value for a
    # diverged trial (the metric's failed_value when none): what searches maximise
    "node",
    "train_seconds",  # the trial's own time in training and evaluation, all epochs so far
)

DIVERGENCE_CHECK_EVERY = 10  # iterations between loss checks on a GPU (each one syncs)
EVAL_BATCH_SIZE = 1000  # test examples per forward pass

# Datasets loaded by this process, so a reused Ray actor does not load them again.
_DATASETS: dict[tuple[str, int | None, int | None, str, str], Dataset] = {}

OnEpoch = Callable[[dict[str, Any], TrialState], None]


def node_name() -> str:
    """``<ip> (<hostname>)``: where a trial ran."""
    try:
        import ray.util

        ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    except Exception:  # outside Ray
        ip = "127.0.0.1"
    return f"{ip} ({socket.gethostname()})"


def pick_device(gpus: float) -> torch.device:
    """CUDA when the trial was given a GPU (any fraction) and one is visible, else the CPU."""
    if gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def get_dataset(spec: StudySpec, *, data_dir: str | None, device: torch.device) -> Dataset:
    """The spec's workload's data (resized to ``image_size`` when the spec says), loaded once
    per process; its augmentation and test subset (the first ``test_subset`` examples) set by
    the spec."""
    key = (spec.dataset, spec.train_subset, spec.image_size, str(data_dir), str(device))
    if key not in _DATASETS:
        _DATASETS[key] = get_workload(spec.dataset).load(
            data_dir=data_dir,
            train_subset=spec.train_subset,
            # the whole test set, cached once: studies that differ only in test_subset share it
            test_subset=None,
            image_size=spec.image_size,
            device=device,
        )
    ds = _DATASETS[key]
    if ds.augment != spec.augment and ds.image_size:
        ds = dataclasses.replace(ds, augment=spec.augment)
    return ds.first_test(spec.test_subset)


def cast_dataset(ds: Dataset, dtype: torch.dtype | None) -> Dataset:
    """``ds`` with its images in ``dtype`` (None: as loaded, float32). float64 is for checks
    of exactness (a pack against its members' own trials), not for studies."""
    if dtype is None or ds.train_x.dtype == dtype:
        return ds
    return dataclasses.replace(ds, train_x=ds.train_x.to(dtype), test_x=ds.test_x.to(dtype))


def evaluate(
    model: nn.Module, ds: Dataset, *, device: torch.device, workload: Workload | None = None
) -> tuple[float, float]:
    """(mean test loss, the workload's metric) on the whole test set; for the built-in
    workloads (mean cross-entropy, accuracy as a fraction)."""
    workload = workload if workload is not None else get_workload(ds.name)
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    metric_sum = torch.zeros((), device=device, dtype=torch.float64)
    n = 0  # units of the sums: examples, or what the workload counts (tokens)
    with torch.inference_mode(), autocast_for(device):
        for x, y in batches(ds, batch_size=EVAL_BATCH_SIZE, train=False):
            outputs = as_float(model(_layout(x, device)))
            loss_sum += workload.loss(outputs, y, reduction="sum")
            metric_sum += workload.metric_sum(outputs, y)
            n += workload.count(y)
    return float(loss_sum.item()) / n, workload.metric_value(float(metric_sum.item()), n)


def run_trial(
    spec: StudySpec,
    trial: TrialConfig,
    *,
    data_dir: str | None = None,
    threads: int | None = None,  # CPU threads for torch; None: leave torch's setting
    gpus: float = 0.0,  # the trial's share of a GPU; > 0 trains on CUDA when there is one
    resume_from: Mapping[str, Any] | None = None,
    on_epoch: OnEpoch | None = None,
    epochs: int | None = None,  # stop after this epoch (default: spec.epochs)
    dtype: torch.dtype | None = None,  # parameters and images; None: float32
) -> list[dict[str, Any]]:
    """Train ``trial`` of ``spec``; return the per-epoch metrics (``EPOCH_KEYS``) of the epochs
    run here (after ``resume_from``'s epoch). Stops early, at once, when the loss diverges."""
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    device = pick_device(gpus)
    workload = get_workload(spec.dataset)
    metric = workload.metric
    ds = cast_dataset(get_dataset(spec, data_dir=data_dir, device=device), dtype)
    state = build_state(spec, trial, ds, device=device, dtype=dtype)
    if resume_from is not None:
        state.load_state_dict(resume_from)
    node = node_name()
    check_every = 1 if device.type == "cpu" else DIVERGENCE_CHECK_EVERY
    history: list[dict[str, Any]] = []
    for epoch in range(state.epoch + 1, (epochs or spec.epochs) + 1):
        started = time.perf_counter()
        train_loss, lr, diverged = _train_epoch(
            state, ds, spec, workload, device=device, check_every=check_every
        )
        if diverged:
            test_loss, test_acc = math.nan, math.nan
        else:
            test_loss, test_acc = evaluate(state.model, ds, device=device, workload=workload)
            if not (math.isfinite(test_loss) and math.isfinite(test_acc)):
                diverged = True  # finite training loss, exploding logits; or a NaN metric
        if math.isfinite(test_acc):
            state.last_finite_acc = test_acc
        state.epoch = epoch
        state.train_seconds += time.perf_counter() - started
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            "test_loss": test_loss,
            metric.name: test_acc,
            "lr": lr,
            "diverged": diverged,
            "objective": metric.sign
            * (state.last_finite_acc if state.last_finite_acc is not None else metric.failed_value),
            "node": node,
            "train_seconds": state.train_seconds,
        }
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics, state)
        if diverged:
            break
    return history


def _train_epoch(
    state: TrialState,
    ds: Dataset,
    spec: StudySpec,
    workload: Workload,
    *,
    device: torch.device,
    check_every: int,
) -> tuple[float, float, bool]:
    """One epoch; returns (mean training loss so far, the last lr, whether it diverged)."""
    model, optimizer, scheduler = state.model, state.optimizer, state.scheduler
    limit = spec.divergence_loss if spec.divergence_loss is not None else math.inf
    model.train()
    dtype = loss_dtype(ds)
    loss_sum = torch.zeros((), device=device, dtype=dtype)
    loss_max = torch.zeros((), device=device, dtype=dtype)  # NaN propagates
    steps = 0
    lr = float(optimizer.param_groups[0]["lr"])
    for x, y in batches(ds, batch_size=spec.batch_size, generator=state.generator):
        lr = float(optimizer.param_groups[0]["lr"])
        with autocast_for(device):
            loss = workload.loss(as_float(model(_layout(x, device))), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        scheduler.step()
        detached = loss.detach()
        loss_sum += detached
        loss_max = torch.maximum(loss_max, detached)
        steps += 1
        if steps % check_every == 0:
            worst = float(loss_max.item())
            if not math.isfinite(worst) or worst > limit:
                return float(loss_sum.item()) / steps, lr, True
    worst = float(loss_max.item())
    mean = float(loss_sum.item()) / max(steps, 1)
    return mean, lr, not math.isfinite(worst) or worst > limit


def as_float(logits: torch.Tensor) -> torch.Tensor:
    """bf16 logits (autocast) to float32 for the loss; float32 and float64 ones as they are."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def loss_dtype(ds: Dataset) -> torch.dtype:
    """What losses are summed in: float64 for float64 images, else float32."""
    return torch.float64 if ds.train_x.dtype == torch.float64 else torch.float32


def autocast_for(device: torch.device) -> torch.autocast:
    # bf16 on the GPU (no loss scaling needed); the CPU trains in fp32.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _layout(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
