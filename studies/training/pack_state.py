"""A pack's state: its members (config, status, time), their stacked networks, optimizer,
schedules and generators (``PackState``), how a pack is built from a study's grid points
(``build_pack``: each member initialised as ``run_trial`` would initialise it), and its
checkpoint (``state_dict``/``load_state_dict``, ``save``/``read``). ``studies.training.pack``
trains it.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import stack_module_state

from radam.packed import MemberHparams, PackedOptimizer
from studies.spec import StudySpec, TrialConfig
from studies.training import fused
from studies.training.trial_state import init_model, trial_schedule
from studies.workloads.dataset import Dataset
from studies.workloads.interface import Workload

MemberStatus = Literal["running", "finished", "diverged", "failed"]
#: How a pack's members run through their network: ``layers``, one horizontally fused
#: network (``studies.training.fused``: grouped convolutions, batched matmuls); ``vmap``,
#: ``torch.func.vmap`` over ``functional_call``.
Road = Literal["layers", "vmap"]

STATE_FILE = "pack_state.pt"


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
    road: Road = "vmap"
    channels_last: bool = False  # fused layout in channels_last (convolutions)
    fused_nets: dict[int, nn.Module] = dataclasses.field(default_factory=dict)
    # the loss and metric of the vmap road (None: classification's cross-entropy and accuracy)
    workload: Workload | None = None

    def set_mode(self, *, train: bool) -> None:
        for net in (self.base, *self.fused_nets.values()):
            net.train(train)

    def fused_net(self, members: int) -> nn.Module:
        """The fused network of ``members`` members side by side (made once per size)."""
        if members not in self.fused_nets:
            net = fused.fuse(self.base, members)
            if net is None:
                raise ValueError(f"{type(self.base).__name__} cannot run as fused layers")
            net.train(self.base.training)
            self.fused_nets[members] = net
        return self.fused_nets[members]

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
