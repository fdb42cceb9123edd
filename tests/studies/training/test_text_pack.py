"""The shakespeare workload through the trainers: a packed pair of members (vmap road, the
workload's own loss and metric) gives the curves of their own trials, in nats per character."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from studies.spec import StudySpec
from studies.training.pack import run_pack
from studies.training.trial import run_trial

TEXT = "".join(f"{w} " for w in ("to be or not to be that is the question " * 80).split())


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_packed_text_members_match_their_own_trials(tmp_path: Path) -> None:
    (tmp_path / "shakespeare").mkdir()
    (tmp_path / "shakespeare" / "input.txt").write_text(TEXT)
    spec = StudySpec.parse(
        {
            "name": "tiny-text",
            "dataset": "shakespeare",
            "model": "transformer",
            "optimizers": ["adamw", "radam"],
            "learning_rates": [3e-3],
            "warmup": {"kinds": ["linear"], "steps": [5], "optimizers": ["adamw"]},
            "seeds": [0],
            "epochs": 2,
            "batch_size": 8,
            "train_subset": 32,  # 4 steps an epoch
            "test_subset": 4,
            "pack_size": 2,
        }
    )
    configs = spec.trial_configs()

    packed = run_pack(spec, configs, data_dir=str(tmp_path), threads=1)
    alone = [run_trial(spec, cfg, data_dir=str(tmp_path), threads=1) for cfg in configs]

    for member, trial in zip(packed, alone, strict=True):
        assert [row["epoch"] for row in member] == [1, 2]
        for p, t in zip(member, trial, strict=True):
            assert "val_loss" in p and "test_acc" not in p
            assert p["val_loss"] == pytest.approx(t["val_loss"], abs=1e-4)
            assert p["val_loss"] == pytest.approx(p["test_loss"], abs=1e-6)  # both nats/char
            assert p["objective"] == pytest.approx(-p["val_loss"])  # lower is better
        assert member[-1]["val_loss"] < math.log(len(set(TEXT)))  # it learned something
