"""A sampled study's figures, from its ``SampledSummary`` (``StudySummary.sampled``) alone.

- ``tuning_curve``: per optimizer the best so far against the number of configurations tried
  (mean over repeats, a band from the lowest to the highest repeat), and for random search
  the closed-form expected best at k (dashed; Dodge et al. 2019).
- ``lr_samples``: the metric against log lr for every sampled point, one panel per optimizer,
  coloured by warmup length where the optimizer warms up linearly (Figure 6's lr axis, made
  continuous); the best point ringed.

Headless, on the Agg canvas like ``figures``.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from studies.analysis.sampled import SampledSummary

DPI = 120
PANEL_SIZE = (4.2, 3.4)
MAX_COLUMNS = 4


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _nan(values: list[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def tuning_curve_figure(sampled: SampledSummary, title: str) -> Figure:
    """Best so far against configurations tried, per optimizer (see the module)."""
    fig = _figure(6.4, 4.4)
    ax = fig.subplots()
    for number, opt in enumerate(sampled.optimizers):
        mean = _nan(opt.curve_mean_pct)
        if not np.isfinite(mean).any():
            continue
        k = np.arange(1, mean.size + 1)
        color = f"C{number}"
        label = f"{opt.label} (best so far, mean of {opt.repeats})"
        ax.plot(k, mean, color=color, marker="o" if k.size <= 30 else None, ms=3, label=label)
        if opt.repeats > 1:
            low, high = _nan(opt.curve_low_pct), _nan(opt.curve_high_pct)
            ax.fill_between(k, low, high, color=color, alpha=0.18, linewidth=0)
        if opt.expected_max_pct:
            em = np.array(opt.expected_max_pct)
            ax.plot(
                np.arange(1, em.size + 1),
                em,
                color=color,
                linestyle="--",
                linewidth=1.2,
                label=f"{opt.label} E[best of k] (random draws)",
            )
    ax.set_xlabel("configurations tried (k)")
    better = "highest" if sampled.higher_is_better else "lowest"
    ax.set_ylabel(f"{better} final {sampled.metric_label} so far ({sampled.unit})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    band = " band: lowest to highest repeat;" if sampled.repeats > 1 else ""
    ax.set_title(f"Tuning curves ({sampled.kind}):{band} {title}", fontsize="medium")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
    return fig


def lr_samples_figure(sampled: SampledSummary, title: str) -> Figure:
    """Every sampled point: metric against log lr, a panel per optimizer (see the module)."""
    n = max(1, len(sampled.optimizers))
    cols = min(n, MAX_COLUMNS)
    rows = math.ceil(n / cols)
    fig = _figure(PANEL_SIZE[0] * cols + 0.8, PANEL_SIZE[1] * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    steps = [
        p.warmup_steps
        for o in sampled.optimizers
        for p in o.points
        if p.warmup == "linear" and p.warmup_steps > 0
    ]
    norm = (
        LogNorm(min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1)
        if (steps)
        else None
    )
    mappable = None
    for ax, opt in zip(axes, sampled.optimizers, strict=False):
        scored = [p for p in opt.points if p.score_pct is not None]
        linear = [p for p in scored if p.warmup == "linear"]
        other = [p for p in scored if p.warmup != "linear"]
        if other:
            ax.scatter(
                [p.lr for p in other],
                [p.score_pct for p in other],
                s=18,
                color="0.25",
                label="no warmup" if all(p.warmup == "none" for p in other) else "other",
            )
        if linear and norm is not None:
            mappable = ax.scatter(
                [p.lr for p in linear],
                [p.score_pct for p in linear],
                c=[p.warmup_steps for p in linear],
                cmap="viridis",
                norm=norm,
                s=18,
            )
        if opt.best_lr is not None and opt.best_pct is not None:
            ax.scatter(
                [opt.best_lr],
                [opt.best_pct],
                s=110,
                facecolors="none",
                edgecolors="C3",
                linewidths=1.5,
                label="best found",
            )
        ax.set_xscale("log")
        # ticks at 1 and 3 per decade (Figure 6's lrs), as plain numbers; no minor labels
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{opt.label}: {opt.samples} points", fontsize="medium")
        ax.set_xlabel("learning rate (log)")
        ax.grid(alpha=0.3)
        if ax.collections:
            ax.legend(fontsize="x-small", loc="lower left")
    for ax in axes[len(sampled.optimizers) :]:
        ax.set_visible(False)
    axes[0].set_ylabel(f"final {sampled.metric_label} ({sampled.unit}), mean over seeds")
    if mappable is not None:
        fig.colorbar(
            mappable, ax=list(axes[: len(sampled.optimizers)]), label="linear warmup (iterations)"
        )
    fig.suptitle(f"Every sampled configuration ({sampled.kind}): {title}", fontsize="medium")
    return fig
