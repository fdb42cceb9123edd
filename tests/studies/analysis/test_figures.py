"""The figures of a small real study: open, have the expected panels, are not blank.

The study is real: an MLP trained in plain torch on scikit-learn's digits, 3 epochs per
configuration, for RAdam, Adam and SGD over three learning rates and two seeds, plus Adam with
a linear warmup (a warmup grid) — so the curves are curves a study produces, not drawn ones.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn

from studies.analysis.figures import (
    expected_max_figure,
    figure6,
    lr_sensitivity,
    warmup_heatmap,
    write_figures,
)
from studies.analysis.summarize import summarize
from studies.analysis.summary import StudySummary
from studies.results import TrialRecord

EPOCHS = 3
LRS = (0.001, 0.01, 0.1)
SEEDS = (0, 1)
BATCH = 64  # images per step
WARMUP_STEPS = 40  # iterations (about two epochs of 1,400 images)


def _optimizer(name: str, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    try:  # the project's factory once it lands; torch's own classes until then
        from radam.factory import make_optimizer

        return make_optimizer(name, params, lr=lr)
    except ImportError:
        if name == "radam":
            return torch.optim.RAdam(params, lr=lr, decoupled_weight_decay=True)
        if name == "adam":
            return torch.optim.Adam(params, lr=lr)
        return torch.optim.SGD(params, lr=lr, momentum=0.9)


@functools.cache
def _digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def train_digits_trial(
    optimizer: str,
    lr: float,
    seed: int,
    *,
    warmup: str = "none",
    warmup_steps: int = 0,
    epochs: int = EPOCHS,
) -> TrialRecord:
    """Train a 64-32-10 MLP on digits (1,400 train / 397 test images); one real trial."""
    x_train, y_train, x_test, y_test = _digits()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = _optimizer(optimizer, list(model.parameters()), lr)
    ramp = (lambda step: min(1.0, (step + 1) / warmup_steps)) if warmup == "linear" else None
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, ramp) if ramp else None
    history: dict[str, list[float]] = {
        name: [] for name in ("train_loss", "test_loss", "test_acc", "lr")
    }
    status = "finished"
    for _ in range(epochs):
        order = torch.randperm(len(x_train))
        losses = []
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if schedule:
                schedule.step()
            losses.append(loss.item())
        with torch.no_grad():
            logits = model(x_test)
            history["test_loss"].append(nn.functional.cross_entropy(logits, y_test).item())
            history["test_acc"].append((logits.argmax(1) == y_test).float().mean().item())
        history["train_loss"].append(float(np.mean(losses)))
        history["lr"].append(opt.param_groups[0]["lr"])
        if not math.isfinite(history["train_loss"][-1]):
            status = "diverged"
            break
    return TrialRecord(
        trial_id=f"{optimizer}-{lr:g}-{warmup}-{seed}",
        optimizer=optimizer,
        lr=lr,
        warmup=warmup,
        warmup_steps=warmup_steps,
        seed=seed,
        status=status,  # type: ignore[arg-type]
        history=history,
    )


@pytest.fixture(scope="module")
def digits_trials() -> list[TrialRecord]:
    torch.set_num_threads(1)
    trials = [
        train_digits_trial(opt, lr, seed)
        for opt in ("radam", "adam", "sgd")
        for lr in LRS
        for seed in SEEDS
    ]
    trials += [
        train_digits_trial("adam", lr, seed, warmup="linear", warmup_steps=WARMUP_STEPS)
        for lr in LRS
        for seed in SEEDS
    ]
    return trials


@pytest.fixture(scope="module")
def lr_summary(digits_trials: list[TrialRecord]) -> StudySummary:
    no_warmup = [t for t in digits_trials if t.warmup == "none"]
    return summarize(no_warmup, study_id="digits", name="digits-mlp", trials_total=len(no_warmup))


@pytest.fixture(scope="module")
def warmup_summary(digits_trials: list[TrialRecord]) -> StudySummary:
    wanted = [t for t in digits_trials if t.optimizer in ("adam", "radam")]
    return summarize(wanted, study_id="digits-warmup", trials_total=len(wanted))


def _visible_axes(fig: Figure) -> list:  # type: ignore[type-arg]
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def _assert_not_blank(path: Path) -> None:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    background = pixels[0, 0]
    differs = np.abs(pixels - background).sum(axis=2) > 30
    assert differs.mean() > 0.02, f"{path.name} is (nearly) blank"


def test_the_real_study_learned_something(lr_summary: StudySummary) -> None:
    # Guards the figure tests: digits with a sane lr reaches far above chance (10%).
    best = max(o.best_acc_pct or 0.0 for o in lr_summary.optimizers)
    assert best > 80.0
    assert all(len(c.curve_mean_pct) == EPOCHS for c in lr_summary.cells)


def test_figure6_has_one_panel_per_optimizer_and_one_line_per_lr(lr_summary: StudySummary) -> None:
    fig = figure6(lr_summary)
    axes = _visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["RAdam", "Adam", "SGD"]
    for ax in axes:
        assert len(ax.get_lines()) == len(LRS)
        legend = ax.get_legend()
        assert legend is not None
        assert [t.get_text() for t in legend.get_texts()] == ["0.001", "0.01", "0.1"]
        assert ax.get_xlabel() == "epoch"
        # The line is the mean over seeds of the real curves.
        xs, _ = axes[0].get_lines()[0].get_data()
        assert list(xs) == [1, 2, 3]
    radam_001 = next(c for c in lr_summary.cells if (c.optimizer, c.lr) == ("radam", 0.001))
    assert list(axes[0].get_lines()[0].get_ydata()) == pytest.approx(radam_001.curve_mean_pct)
    assert axes[0].get_ylabel() == "test accuracy (%)"
    # Shared y-axis: every panel shows the same accuracy range.
    assert len({ax.get_ylim() for ax in axes}) == 1
    assert "digits-mlp" in fig.get_suptitle()


def test_lr_sensitivity_has_a_line_per_optimizer_on_a_log_axis(lr_summary: StudySummary) -> None:
    fig = lr_sensitivity(lr_summary)
    (ax,) = _visible_axes(fig)
    assert ax.get_xscale() == "log"
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["RAdam", "Adam", "SGD"]
    assert len(ax.containers) == 3  # one errorbar container per optimizer
    assert "%" in ax.get_ylabel()


def test_warmup_heatmap_puts_radam_beside_the_warmed_up_adam(
    lr_summary: StudySummary, warmup_summary: StudySummary
) -> None:
    assert warmup_heatmap(lr_summary) is None  # no warmup grid, no heatmap
    fig = warmup_heatmap(warmup_summary)
    assert fig is not None
    ax = _visible_axes(fig)[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == [
        "Adam, no warmup",
        f"Adam, linear warmup ({WARMUP_STEPS} steps)",
        "RAdam, no warmup",
    ]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.001", "0.01", "0.1"]
    image = ax.get_images()[0].get_array()
    assert image.shape == (3, 3)
    assert len(ax.texts) == 9  # every cell annotated with its accuracy


def test_expected_max_has_a_curve_per_optimizer_from_its_mean_to_its_best(
    lr_summary: StudySummary, warmup_summary: StudySummary
) -> None:
    ax = _visible_axes(expected_max_figure(lr_summary))[0]
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["RAdam", "Adam", "SGD"]
    for line, opt in zip(ax.get_lines(), lr_summary.optimizers, strict=True):
        x, y = line.get_data()
        assert list(x) == list(range(1, len(LRS) + 1))  # k = 1..N, N = the optimizer's grid
        assert y[0] == pytest.approx(opt.best_acc_pct - opt.mean_regret_pct)  # k=1: the mean
        assert y[-1] == pytest.approx(opt.best_acc_pct)  # k=N: the best
    # Adam's warmup grid: the whole grid's curve, then one (dashed) per warmup setting.
    warm = _visible_axes(expected_max_figure(warmup_summary))[0]
    labels = [t.get_text() for t in warm.get_legend().get_texts()]
    assert labels == [
        "RAdam, no warmup",
        "Adam, all warmups",
        "Adam, no warmup",
        f"Adam, linear warmup ({WARMUP_STEPS} steps)",
    ]
    assert len(warm.get_lines()[1].get_xdata()) == 2 * len(LRS)


def test_write_figures_writes_readable_non_blank_files(
    tmp_path: Path, lr_summary: StudySummary, warmup_summary: StudySummary
) -> None:
    written = write_figures(lr_summary, tmp_path / "lr")
    assert [p.name for p in written] == [
        "figure6.png",
        "figure6.svg",
        "lr_sensitivity.png",
        "expected_max.png",
        "expected_max.svg",
    ]
    for path in written:
        if path.suffix == ".png":
            _assert_not_blank(path)
    assert "<svg" in (tmp_path / "lr" / "figure6.svg").read_text()[:500]
    assert "<svg" in (tmp_path / "lr" / "expected_max.svg").read_text()[:500]
    warm = write_figures(warmup_summary, tmp_path / "warm")
    assert (tmp_path / "warm" / "warmup.png") in warm
    _assert_not_blank(tmp_path / "warm" / "warmup.png")


def test_figures_of_a_partial_study_say_so(digits_trials: list[TrialRecord]) -> None:
    some = digits_trials[:5]
    summary = summarize(some, name="digits", status="running", trials_total=18)
    assert "partial, 5/18 trials" in figure6(summary).get_suptitle()
