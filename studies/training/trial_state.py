"""A trial's state: what it needs to continue after an epoch (``TrialState``: model,
optimizer, scheduler, RNGs, epoch; saved and read as one checkpoint file), and how a trial's
network, optimizer and lr schedule are built from its seed (``build_state``; ``init_model``
and ``trial_schedule`` are shared with the pack runner, so that a packed member starts exactly
where its own trial would).

The optimizer comes from ``radam.factory.make_optimizer`` (the one factory shared with the
optimizer package) and the learning rate follows ``radam.schedules.lr_lambda`` (warmup x step
decay), stepped once per iteration.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from studies.spec import StudySpec, TrialConfig
from studies.workloads.batching import steps_per_epoch
from studies.workloads.dataset import Dataset


@dataclasses.dataclass
class TrialState:
    """Everything a trial needs to continue after ``epoch`` (1-based, 0 before the first)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator
    epoch: int = 0
    train_seconds: float = 0.0
    best_finite_acc: float | None = None
    last_finite_acc: float | None = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "numpy_rng": np.random.get_state(),
            "epoch": self.epoch,
            "train_seconds": self.train_seconds,
            "last_finite_acc": self.last_finite_acc,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        np.random.set_state(state["numpy_rng"])
        self.epoch = int(state["epoch"])
        self.train_seconds = float(state["train_seconds"])
        self.last_finite_acc = state["last_finite_acc"]

    def save(self, directory: str | os.PathLike[str]) -> Path:
        path = Path(directory) / "trial_state.pt"
        torch.save(self.state_dict(), path)
        return path

    @staticmethod
    def read(directory: str | os.PathLike[str]) -> dict[str, Any]:
        # weights_only=False: the state holds Python's and numpy's RNG tuples; the file is
        # one this trial wrote into its own Tune storage.
        state: dict[str, Any] = torch.load(
            Path(directory) / "trial_state.pt", map_location="cpu", weights_only=False
        )
        return state


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def init_model(
    spec: StudySpec,
    trial: TrialConfig,
    ds: Dataset,
    *,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> tuple[nn.Module, torch.Generator]:
    """The trial's network, initialised from its seed, and the generator of its batch order and
    augmentation (seeded alike): what ``build_state`` and the pack runner (``studies.training.pack``)
    share, so that a packed member starts exactly where its own trial would."""
    from studies.workloads.registry import get_workload

    generator = seed_everything(trial.seed)
    model = get_workload(spec.dataset).build_model(spec.model, ds).to(device=device, dtype=dtype)
    return model, generator


def trial_schedule(spec: StudySpec, trial: TrialConfig, ds: Dataset) -> Callable[[int], float]:
    """The trial's lr factor per iteration (warmup x step decay), for ``LambdaLR``."""
    from radam.schedules import lr_lambda

    return lr_lambda(
        warmup=trial.warmup,
        warmup_steps=trial.warmup_steps,
        base_lr=trial.lr,
        beta2=spec.betas[1],
        steps_per_epoch=steps_per_epoch(ds, spec.batch_size),
        milestones=spec.lr_milestones,
        gamma=spec.lr_gamma,
    )


def build_state(
    spec: StudySpec,
    trial: TrialConfig,
    ds: Dataset,
    *,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> TrialState:
    from studies.workloads.optimizers import make_optimizer

    model, generator = init_model(spec, trial, ds, device=device, dtype=dtype)
    if device.type == "cuda" and ds.train_x.dim() == 4:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(
        trial.optimizer,
        model.parameters(),
        lr=trial.lr,
        weight_decay=spec.weight_decay,
        momentum=spec.momentum,
        betas=spec.betas,
        eps=spec.eps,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, trial_schedule(spec, trial, ds))
    return TrialState(model, optimizer, scheduler, generator)
