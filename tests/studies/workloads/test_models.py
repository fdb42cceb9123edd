"""Models: ResNet-20's exact size and shape, the small CNN and MLP, channels_last and bf16
autocast, and that each one learns from real data through ``studies.workloads``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from studies import paths
from studies.errors import SpecError
from studies.workloads.batching import batches
from studies.workloads.loading import load_dataset
from studies.workloads.models import (
    MODELS,
    ShortcutA,
    build_model,
    count_parameters,
    resnet20,
)

SHAPES = {"resnet20": (3, 32), "cnn": (1, 28), "mlp": (1, 8)}  # in_channels, image_size


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Torch's OpenMP threads spin-wait for each other: on a 2-core machine shared with other
    processes, 2 threads ran these small models 10-60x slower than 1 thread (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_resnet20_has_the_authors_272474_parameters() -> None:
    assert count_parameters(resnet20()) == 272_474
    built = build_model("resnet20", num_classes=10, in_channels=3, image_size=32)
    assert count_parameters(built) == 272_474


def test_resnet20_layout_follows_he_et_al() -> None:
    model = resnet20()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    three_by_three = [c for c in convs if c.kernel_size == (3, 3)]
    projections = [c for c in convs if c.kernel_size == (1, 1)]
    # 1 stem conv + 3 stages x 3 blocks x 2 convs, + the linear layer = 20 weighted layers.
    assert len(three_by_three) == 19 and isinstance(model.fc, nn.Linear)
    assert [c.out_channels for c in three_by_three] == [16] + [16] * 6 + [32] * 6 + [64] * 6
    # Only the two stage-entry blocks project their shortcut (stride 2, 16->32, 32->64).
    assert [(c.in_channels, c.out_channels, c.stride) for c in projections] == [
        (16, 32, (2, 2)),
        (32, 64, (2, 2)),
    ]
    features: list[torch.Size] = []
    for stage in model.stages:
        stage.register_forward_hook(lambda _m, _i, out: features.append(out.shape))
    model(torch.randn(2, 3, 32, 32))
    assert features == [(2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8)]


def test_option_a_shortcuts_add_no_parameters_and_pad_with_zeros() -> None:
    model = resnet20(shortcut="A")
    assert count_parameters(model) == 269_722  # 272,474 less the two 1x1 conv + BN pairs
    assert not [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]

    x = torch.randn(2, 16, 8, 8)
    out = ShortcutA(in_planes=16, planes=32, stride=2)(x)

    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert not out[:, :8].any() and not out[:, 24:].any()


def test_resnet20_init_is_kaiming_fan_out_as_in_the_authors_code() -> None:
    torch.manual_seed(0)
    model = resnet20()
    conv = model.stages[2][1].conv2  # 64 -> 64, 3x3: 36,864 weights
    expected = (2.0 / (3 * 3 * 64)) ** 0.5
    assert abs(float(conv.weight.detach().std()) / expected - 1) < 0.03
    bn = model.stages[2][1].bn2
    assert torch.equal(bn.weight, torch.ones(64)) and torch.equal(bn.bias, torch.zeros(64))
    torch.manual_seed(0)
    same = resnet20()
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters(), strict=True)
    )


@pytest.mark.parametrize("name", MODELS)
def test_models_give_one_logit_per_class(name: str) -> None:
    in_channels, size = SHAPES[name]
    model = build_model(name, num_classes=7, in_channels=in_channels, image_size=size)

    logits = model(torch.randn(3, in_channels, size, size))

    assert logits.shape == (3, 7) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODELS)
def test_models_run_channels_last_under_bf16_autocast(name: str) -> None:
    in_channels, size = SHAPES[name]
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=in_channels, image_size=size)
    x = torch.randn(4, in_channels, size, size)
    reference = model(x)
    model = model.to(memory_format=torch.channels_last)
    x_cl = x.to(memory_format=torch.channels_last)

    assert torch.allclose(model(x_cl), reference, atol=1e-4)  # same function, other layout
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x_cl)
        loss = F.cross_entropy(logits, torch.arange(4))
    loss.backward()

    assert logits.dtype == torch.bfloat16 and logits.shape == (4, 10)
    assert torch.allclose(logits.float(), reference, atol=0.25, rtol=0.1)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_model_requests_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="model"):
        build_model("vgg16", num_classes=10, in_channels=3, image_size=32)
    with pytest.raises(SpecError, match="divisible by 4"):
        build_model("cnn", num_classes=10, in_channels=1, image_size=30)
    assert MODELS == ("resnet20", "cnn", "mlp")


def train_and_score(
    model: nn.Module, dataset: str, *, epochs: int, lr: float, train_subset: int | None = None
) -> float:
    """A plain Adam loop over ``studies.workloads.batching.batches``; returns test accuracy."""
    ds = load_dataset(dataset, train_subset=train_subset)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        for x, y in batches(ds, batch_size=64, generator=generator):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():  # the first 1,000 test images: enough to tell learning from chance
        x, y = ds.test_x[:1000], ds.test_y[:1000]
        return float((model(x).argmax(1) == y).float().mean())


def test_mlp_learns_digits() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", num_classes=10, in_channels=1, image_size=8)

    assert train_and_score(model, "digits", epochs=5, lr=1e-3) > 0.9


def test_cnn_learns_fashion_mnist() -> None:
    if not (paths.DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(
            f"Debian's dataset-fashion-mnist is not installed ({paths.DEBIAN_FASHION_MNIST})"
        )
    torch.manual_seed(0)
    model = build_model("cnn", num_classes=10, in_channels=1, image_size=28)

    # 2,000 images, one epoch: far above chance (10%) already.
    assert train_and_score(model, "fashion_mnist", epochs=1, lr=1e-3, train_subset=2000) > 0.6


def test_resnet20_fits_a_small_batch() -> None:
    torch.manual_seed(0)
    model = resnet20()
    x, y = torch.randn(16, 3, 32, 32), torch.arange(16) % 10
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
