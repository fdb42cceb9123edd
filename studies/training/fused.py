"""Horizontally fused networks: K members of a pack as one network of K times the width.

HFTA's road (Wang et al., MLSys 2021): where ``torch.func.vmap`` runs K copies of a network
through a batching rule per operation, a fused network *is* one network whose layers hold the
K members side by side, so every operation is one ordinary call:

- a ``Conv2d`` becomes a grouped convolution over ``K x C`` channels (member k's filters see
  only member k's channels);
- a ``BatchNorm2d`` over ``K x C`` channels is, channel by channel, each member's own batch
  norm: its batch statistics, its affine weights and its running statistics (updated in
  place on the member's slice of the stacked buffers);
- a ``Linear`` becomes a batched matmul (``baddbmm``) over ``[K, batch, features]``;
- everything else (ReLU, max and average pooling, flattening) acts per channel or keeps
  member k's features together, so it runs unchanged.

Activations are laid out ``[batch, K x channels, ...]``: member k's images are its own batch
(its own data order and augmentation) placed in channel group k. The stacked tensors of
``torch.func.stack_module_state`` (``[K, *shape]``, contiguous) are handed to the fused
network as views (``[K * out, in, kh, kw]`` and so on), so gradients and BatchNorm's running
statistics land in the stacked leaves and buffers the pack's optimizer and checkpoints use.

What it claims (tests/studies/training/test_pack.py runs the pack both ways): member k's outputs and
gradients are those of its own network, to float64 rounding (the grouped and batched kernels
sum in their own order). ``fuse`` returns None for a network with a module it does not know
how to fuse (He et al.'s option-A shortcut pads channels at the ends of the whole channel
axis, which would mix members): the pack then uses ``vmap``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from studies.workloads.models import ShortcutA

# Modules that act per channel or per member's features, unchanged on the fused layout.
_LAYOUT_FREE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.Identity,
    nn.Sequential,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
)


class PackedLinear(nn.Module):
    """K linear layers as one batched matmul on a ``[batch, K * in_features]`` input; the
    weight is ``[K, out, in]`` and the bias ``[K, out]`` (the stacked members' own)."""

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(
            torch.empty(members, out_features, in_features, device="meta"), requires_grad=False
        )
        self.bias = (
            nn.Parameter(torch.empty(members, out_features, device="meta"), requires_grad=False)
            if bias
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[0]
        per_member = x.reshape(batch, self.members, self.in_features).transpose(0, 1)
        if self.bias is None:
            out = torch.bmm(per_member, self.weight.transpose(1, 2))
        else:
            out = torch.baddbmm(self.bias.unsqueeze(1), per_member, self.weight.transpose(1, 2))
        return out.transpose(0, 1).reshape(batch, self.members * self.out_features)


def fusable(base: nn.Module) -> bool:
    """Whether ``fuse`` knows every module of ``base``."""
    known = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, *_LAYOUT_FREE)
    for module in base.modules():
        if isinstance(module, ShortcutA):
            return False
        if type(module).__module__.startswith("torch.nn") and not isinstance(module, known):
            return False
    return True


def fuse(base: nn.Module, members: int) -> nn.Module | None:
    """A structure-only copy (meta device) of ``base`` that runs ``members`` members side by
    side; its parameters and buffers come from ``fused_views`` at each call. None when
    ``base`` holds a module this cannot fuse."""
    if not fusable(base):
        return None
    fused = copy.deepcopy(base).to("meta")
    for name, module in list(fused.named_modules()):
        if isinstance(module, nn.Conv2d):
            module.groups *= members
            module.in_channels *= members
            module.out_channels *= members
        elif isinstance(module, nn.BatchNorm2d):
            module.num_features *= members
        elif isinstance(module, nn.Linear):
            parent, _, leaf = name.rpartition(".")
            owner = fused.get_submodule(parent) if parent else fused
            packed = PackedLinear(
                members, module.in_features, module.out_features, module.bias is not None
            )
            setattr(owner, leaf, packed)
    return fused


def fused_views(
    fused: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor]
) -> dict[str, Tensor]:
    """The stacked ``[K, *shape]`` tensors as the fused network's parameters and buffers:
    views, so gradients and in-place running-statistics updates reach the stacked ones."""
    out: dict[str, Tensor] = {}
    for name, module in fused.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, PackedLinear):
            continue  # takes [K, out, in] and [K, out] as stacked
        for leaf, _ in list(module.named_parameters(recurse=False)) + list(
            module.named_buffers(recurse=False)
        ):
            key = prefix + leaf
            stacked = params[key] if key in params else buffers[key]
            if isinstance(module, nn.Conv2d | nn.BatchNorm2d) and leaf != "num_batches_tracked":
                out[key] = stacked.reshape(-1, *stacked.shape[2:])
    for key in (*params, *buffers):
        out.setdefault(key, params[key] if key in params else buffers[key])
    return out


def to_fused_layout(xs: Tensor, *, channels_last: bool = False) -> Tensor:
    """``[K, batch, C, H, W]`` (member k's own batch) -> ``[batch, K * C, H, W]``."""
    members, batch = xs.shape[:2]
    fused = xs.transpose(0, 1).reshape(batch, members * xs.shape[2], *xs.shape[3:])
    return fused.contiguous(memory_format=torch.channels_last) if channels_last else fused


def shared_batch_layout(x: Tensor, members: int, *, channels_last: bool = False) -> Tensor:
    """One batch ``[batch, C, H, W]`` for every member (evaluation) -> ``[batch, K * C, H, W]``."""
    return to_fused_layout(x.unsqueeze(0).expand(members, *x.shape), channels_last=channels_last)


def member_logits(fused_logits: Tensor, members: int) -> Tensor:
    """``[batch, K * classes]`` -> ``[K, batch, classes]``."""
    batch = fused_logits.shape[0]
    return fused_logits.reshape(batch, members, -1).transpose(0, 1)


def member_losses(logits: Tensor, labels: Tensor) -> Tensor:
    """Each member's mean cross-entropy ([K]) from ``[K, batch, classes]`` logits and
    ``[K, batch]`` labels."""
    members, batch = labels.shape
    flat = F.cross_entropy(
        logits.reshape(members * batch, -1), labels.reshape(-1), reduction="none"
    )
    return flat.reshape(members, batch).mean(dim=1)
