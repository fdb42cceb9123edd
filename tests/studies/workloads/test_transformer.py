"""The char Transformer (``studies.workloads.transformer``): shapes, the causal mask, Post-LN
against Pre-LN, vmap over stacked members, and a few steps of training that lower the loss."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from studies.workloads.registry import get_workload
from studies.workloads.shakespeare import load_shakespeare
from studies.workloads.text import TEXT_MODELS
from studies.workloads.transformer import Block, CharTransformer


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_logits_put_the_vocabulary_in_dimension_one_for_cross_entropy() -> None:
    torch.manual_seed(0)
    model = CharTransformer(11, context=16, d_model=32, layers=2, heads=4)
    ids = torch.randint(0, 11, (3, 16))

    logits = model(ids)

    assert logits.shape == (3, 11, 16) and torch.isfinite(logits).all()
    # per-character loss and accuracy with [B, T] targets, as the trainers compute them
    loss = F.cross_entropy(logits, ids)
    assert 1.5 < loss.item() < 3.5  # about ln(11) = 2.4 at init
    assert (logits.argmax(dim=1) == ids).shape == (3, 16)
    assert model(ids[:, :5]).shape == (3, 11, 5)  # shorter windows too
    with pytest.raises(ValueError, match="context"):
        model(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_position_t_sees_only_characters_up_to_t(norm: str) -> None:
    torch.manual_seed(0)
    model = CharTransformer(13, context=12, d_model=32, norm=norm)  # type: ignore[arg-type]
    ids = torch.randint(0, 13, (2, 12))
    changed = ids.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 13  # change the future of position 6

    a, b = model(ids), model(changed)

    assert torch.allclose(a[:, :, :7], b[:, :, :7], atol=1e-6)  # the past is untouched
    assert not torch.allclose(a[:, :, 7:], b[:, :, 7:])  # the changed positions do change


def test_post_ln_normalises_after_the_residual_pre_ln_before() -> None:
    torch.manual_seed(0)
    post = Block(16, 4, 8, "post")
    pre = Block(16, 4, 8, "pre")
    pre.load_state_dict(post.state_dict())
    x = 5.0 * torch.randn(2, 8, 16) + 3.0

    y_post, y_pre = post(x), pre(x)

    # Post-LN ends in a LayerNorm: every position is normalised (weight 1, bias 0)
    assert torch.allclose(y_post.mean(-1), torch.zeros(2, 8), atol=1e-5)
    assert torch.allclose(y_post.std(-1, unbiased=False), torch.ones(2, 8), atol=1e-3)
    # Pre-LN keeps the residual stream: x plus the sublayers' outputs
    expected = x + pre.attn(pre.ln1(x))
    expected = expected + pre.mlp(pre.ln2(expected))
    assert torch.allclose(y_pre, expected, atol=1e-5)
    assert not torch.allclose(y_pre, y_post)
    assert isinstance(CharTransformer(5, norm="pre").ln_f, torch.nn.LayerNorm)
    assert isinstance(CharTransformer(5, norm="post").ln_f, torch.nn.Identity)


def test_the_workload_builds_post_and_pre_ln_and_measures_nats_per_char(tmp_path: Path) -> None:
    (tmp_path / "shakespeare").mkdir()
    (tmp_path / "shakespeare" / "input.txt").write_text("to be or not to be\n" * 60)
    ds = load_shakespeare(tmp_path, context=8)
    workload = get_workload("shakespeare")

    assert workload.models == TEXT_MODELS == ("transformer", "transformer_pre_ln")
    assert workload.metric.name == "val_loss" and workload.metric.direction == "lower"
    assert workload.packable and not workload.classification  # packs, on the vmap road
    post = workload.build_model("transformer", ds)
    pre = workload.build_model("transformer_pre_ln", ds)
    assert isinstance(post, CharTransformer) and post.norm == "post" and post.context == 8
    assert isinstance(pre, CharTransformer) and pre.norm == "pre"
    logits = post(ds.test_x)
    total = workload.metric_sum(logits, ds.test_y)
    n = workload.count(ds.test_y)
    assert n == ds.test_y.numel()  # characters, not windows
    expected = F.cross_entropy(logits, ds.test_y).item()
    assert workload.metric_value(total.item(), n) == pytest.approx(expected, rel=1e-5)


def test_vmap_over_stacked_members_gives_each_members_own_logits() -> None:
    torch.manual_seed(0)
    members = [CharTransformer(9, context=8, d_model=16, heads=2) for _ in range(3)]
    params, buffers = stack_module_state(members)  # type: ignore[arg-type]
    ids = torch.randint(0, 9, (3, 4, 8))

    def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor):  # type: ignore[no-untyped-def]
        return functional_call(members[0], (p, b), (x,))

    stacked = vmap(forward)(params, buffers, ids)

    for k, member in enumerate(members):
        assert torch.allclose(stacked[k], member(ids[k]), atol=1e-5)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_a_few_adamw_steps_learn_a_repeating_text(norm: str) -> None:
    torch.manual_seed(0)
    text = torch.tensor([0, 1, 2, 3, 4, 5] * 40)
    x = text[:-1].unfold(0, 16, 16)
    y = text[1:].unfold(0, 16, 16)
    model = CharTransformer(6, context=16, d_model=32, norm=norm)  # type: ignore[arg-type]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = F.cross_entropy(model(x), y).item()
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    assert loss.item() < 0.3 * first
