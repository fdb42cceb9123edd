"""A pack of K configurations trains each member exactly as its own trial would: the same
per-epoch curves as K ``run_trial`` calls (float64 to 1e-9 relative, float32 to 1e-4), its own
divergence and failure, and resumes every member from the pack's last epoch."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from studies.spec import StudySpec, TrialConfig
from studies.training.pack import PackState, Road, run_pack
from studies.training.trial import EPOCH_KEYS, run_trial

CURVES = ("train_loss", "test_loss", "test_acc", "lr")


def _spec(**changes: Any) -> StudySpec:
    base: dict[str, Any] = {
        "name": "pack",
        "dataset": "digits",
        "model": "mlp",
        "optimizers": ["radam", "adam", "adamw", "sgd"],
        "learning_rates": [0.01, 0.003],
        "warmup": {"kinds": ["linear"], "steps": [30]},
        "epochs": 2,
        "batch_size": 64,
        "weight_decay": 1e-4,
        "lr_milestones": [1],
    }
    return StudySpec.parse(base | changes)


# Every kind, warmups among them, two seeds, mixed in one pack.
CONFIGS = [
    TrialConfig(optimizer="radam", lr=0.01, seed=0),
    TrialConfig(optimizer="adamw", lr=0.003, warmup="linear", warmup_steps=30, seed=1),
    TrialConfig(optimizer="sgd", lr=0.05, seed=2),
    TrialConfig(optimizer="adam", lr=0.01, warmup="untuned_exponential", seed=0),
]


def _assert_same_curves(
    packed: list[dict[str, Any]], alone: list[dict[str, Any]], *, rel: float
) -> None:
    assert [m["epoch"] for m in packed] == [m["epoch"] for m in alone]
    for p, a in zip(packed, alone, strict=True):
        assert set(EPOCH_KEYS) <= set(p)
        assert p["diverged"] == a["diverged"]
        for name in CURVES:
            if math.isnan(a[name]):
                assert math.isnan(p[name]), name
            else:
                assert p[name] == pytest.approx(a[name], rel=rel, abs=1e-12), (name, p, a)


@pytest.mark.parametrize("road", ["layers", "vmap"])  # fused layers (the default), torch.func
@pytest.mark.parametrize(
    ("model", "changes"),
    [
        ("mlp", {}),
        ("cnn", {"train_subset": 256}),
        # resnet20: BatchNorm in train mode, running statistics per member
        ("resnet20", {"train_subset": 128, "test_subset": 100, "batch_size": 32}),
    ],
)
def test_a_float64_pack_gives_each_members_own_curves(
    model: str, changes: dict[str, Any], road: Road
) -> None:
    spec = _spec(model=model, **changes)
    packed = run_pack(spec, CONFIGS, threads=1, dtype=torch.float64, road=road)
    for cfg, history in zip(CONFIGS, packed, strict=True):
        alone = run_trial(spec, cfg, threads=1, dtype=torch.float64)
        _assert_same_curves(history, alone, rel=1e-9)


def test_a_float32_pack_matches_within_float32_rounding() -> None:
    # float32: the batched kernels sum in another order than the single ones, so the curves
    # agree to float32 rounding carried through two epochs, not bit for bit.
    spec = _spec()
    packed = run_pack(spec, CONFIGS[:2], threads=1)
    for cfg, history in zip(CONFIGS[:2], packed, strict=True):
        _assert_same_curves(history, run_trial(spec, cfg, threads=1), rel=1e-4)
    # the members are trained, and differently: not one curve copied K times
    assert packed[0][-1]["test_acc"] > 0.6  # chance: 0.1
    assert packed[0][-1]["train_loss"] != packed[1][-1]["train_loss"]


@pytest.mark.parametrize("chunk", [None, 1])  # all members per pass; one (stopped: skipped)
def test_a_diverged_member_is_frozen_where_it_diverged_and_the_others_go_on(
    chunk: int | None,
) -> None:
    spec = _spec(epochs=3)
    configs = [
        TrialConfig(optimizer="adam", lr=10.0, seed=0),  # diverges in its first epoch
        TrialConfig(optimizer="sgd", lr=0.05, seed=3),
    ]
    states: list[dict[str, Any]] = []
    seen: list[list[dict[str, Any] | None]] = []

    def record(rows: list[dict[str, Any] | None], state: PackState) -> None:
        seen.append(rows)
        states.append(
            {"status": [m.status for m in state.members], "w": state.member_model_state(0)}
        )

    packed = run_pack(spec, configs, threads=1, dtype=torch.float64, on_epoch=record, chunk=chunk)
    alone_states: list[dict[str, torch.Tensor]] = []
    for cfg, history in zip(configs, packed, strict=True):
        alone = run_trial(
            spec,
            cfg,
            threads=1,
            dtype=torch.float64,
            on_epoch=lambda m, st: alone_states.append(
                {k: v.clone() for k, v in st.model.state_dict().items()}
            ),
        )
        _assert_same_curves(history, alone, rel=1e-9)
    assert len(packed[0]) == 1 and packed[0][0]["diverged"] is True
    assert math.isnan(packed[0][0]["test_acc"]) and packed[0][0]["objective"] == 0.0
    assert [m["epoch"] for m in packed[1]] == [1, 2, 3] and packed[1][-1]["test_acc"] > 0.85
    assert [r[0] is None for r in seen] == [False, True, True]  # no rows after it stopped
    assert [s["status"] for s in states] == [["diverged", "running"]] * 2 + [
        ["diverged", "finished"]
    ]
    # its weights stay where its own trial left them when it diverged
    for name, value in alone_states[0].items():
        torch.testing.assert_close(states[-1]["w"][name], value, rtol=1e-9, atol=0, equal_nan=True)


def test_a_member_that_fails_to_start_is_failed_and_the_others_train() -> None:
    spec = _spec()
    broken = TrialConfig(optimizer="adam", lr=0.01, warmup="linear", warmup_steps=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        run_trial(spec, broken, threads=1)
    statuses: list[list[tuple[str, str | None]]] = []
    packed = run_pack(
        spec,
        [broken, CONFIGS[0]],
        threads=1,
        on_epoch=lambda rows, st: statuses.append([(m.status, m.error) for m in st.members]),
    )
    assert packed[0] == []
    assert statuses[-1][0][0] == "failed" and "warmup_steps" in str(statuses[-1][0][1])
    assert statuses[-1][1] == ("finished", None)
    _assert_same_curves(packed[1], run_trial(spec, CONFIGS[0], threads=1), rel=1e-4)
    with pytest.raises(RuntimeError, match="every member"):
        run_pack(spec, [broken], threads=1)


def test_a_resumed_pack_continues_every_members_curve(tmp_path: Any) -> None:
    spec = _spec(epochs=3, model="resnet20", train_subset=128, test_subset=100, batch_size=32)
    configs = CONFIGS[:3]
    whole = run_pack(spec, configs, threads=1)

    def checkpoint(rows: list[dict[str, Any] | None], state: PackState) -> None:
        state.save(tmp_path)

    first = run_pack(spec, configs, threads=1, on_epoch=checkpoint, epochs=1)
    rest = run_pack(spec, configs, threads=1, resume_from=PackState.read(tmp_path))
    for k in range(len(configs)):
        assert [m["epoch"] for m in first[k] + rest[k]] == [1, 2, 3]
        for name in CURVES:
            assert [m[name] for m in first[k] + rest[k]] == [m[name] for m in whole[k]]
    with pytest.raises(ValueError, match="holds"):
        run_pack(spec, configs[::-1], threads=1, resume_from=PackState.read(tmp_path))


def test_members_in_chunks_and_an_out_of_memory_back_off_give_the_same_curves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The GPU is outside the thing under test: a pass over more than 2 members raises the
    # out-of-memory error a full device would, and the pack must settle on chunks of 2.
    import studies.training.pack as pack

    spec = _spec(model="resnet20", train_subset=64, test_subset=50, batch_size=32)
    whole = run_pack(spec, CONFIGS, threads=1, dtype=torch.float64)
    chunked = run_pack(spec, CONFIGS, threads=1, dtype=torch.float64, chunk=3)
    passes: list[int] = []
    real_losses = pack._chunk_losses

    def losses_with_memory(state: Any, params: Any, buffers: Any, xs: Any, ys: Any) -> Any:
        passes.append(int(xs.shape[0]))
        if xs.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_losses(state, params, buffers, xs, ys)

    monkeypatch.setattr(pack, "_chunk_losses", losses_with_memory)
    sizes: list[int | None] = []
    backed_off = run_pack(
        spec,
        CONFIGS,
        threads=1,
        dtype=torch.float64,
        on_epoch=lambda rows, st: sizes.append(st.chunk),
    )
    assert passes[:3] == [4, 2, 2] and set(passes[3:]) == {2}  # 4 failed, then 2 and 2
    assert sizes == [2, 2]
    for k in range(len(CONFIGS)):
        _assert_same_curves(chunked[k], whole[k], rel=1e-9)
        _assert_same_curves(backed_off[k], whole[k], rel=1e-9)


def test_packs_are_even_and_auto_fills_every_slot_within_the_cap() -> None:
    from studies.training.pack_plan import auto_pack_size, plan_packs

    configs = _spec(seeds=[0, 1, 2]).trial_configs()  # 4 optimizers x 2 lrs x 3 seeds + warmups
    packs = plan_packs(configs, 5)
    assert [c for p in packs for c in p] == configs  # all of them, once, in grid order
    assert max(len(p) for p in packs) <= 5 and max(map(len, packs)) - min(map(len, packs)) <= 1
    assert plan_packs(configs[:3], 1) == [[c] for c in configs[:3]]
    assert auto_pack_size(36, slots=2, gpu=False) == 9  # 4 packs: two rounds on 2 slots
    assert auto_pack_size(36, slots=2, gpu=True) == 18  # one pack per slot
    assert auto_pack_size(24, slots=2, gpu=False) == 12
    assert auto_pack_size(3, slots=4, gpu=False) == 1
    with pytest.raises(ValueError, match="pack_size"):
        plan_packs(configs, 0)


def test_fused_layers_refuse_a_network_that_would_mix_members() -> None:
    # He et al.'s option-A shortcut zero-pads the channel axis at its ends: on the fused
    # layout that would shift every member's channels into its neighbour's, so such a
    # network runs through vmap.
    from studies.training import fused
    from studies.training.pack import default_road
    from studies.workloads.models import resnet20

    assert fused.fuse(resnet20(shortcut="A"), 3) is None
    assert default_road(resnet20(shortcut="A")) == "vmap"
    assert default_road(resnet20()) == "layers"
    net = fused.fuse(resnet20(), 3)
    assert net is not None and net.conv1.groups == 3 and net.fc.weight.shape == (3, 10, 64)
