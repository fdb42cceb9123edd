"""How a study's grid points are cut into packs (``studies.training.pack``): ``plan_packs`` for a
given ``pack_size``, ``auto_pack_size`` for ``pack_size: auto``. Pure functions of counts:
no torch here, so the runner and the service can plan without it."""

from __future__ import annotations

import math
from collections.abc import Sequence

from studies.spec import TrialConfig

# The most members ``pack_size: auto`` puts in one pack (bench/packing.py measured the gain
# per member flattening out by then on 2 CPU cores).
AUTO_PACK_MAX_CPU = 16
AUTO_PACK_MAX_GPU = 64


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
