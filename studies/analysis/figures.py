"""The study's figures, drawn from a ``StudySummary`` alone (so a cached summary redraws them).

- ``figure6``: the paper's Figure 6 layout (Liu et al. 2019): one panel per optimizer (and
  warmup setting), test accuracy against epoch, one line per learning rate (mean over seeds, a
  band of ± one std), shared y-axis, a legend of learning rates in each panel.
- ``lr_sensitivity``: final accuracy against learning rate (log x), one line per optimizer with
  ± std error bars (DeepOBS's sensitivity plot).
- ``warmup_heatmap``: accuracy over warmup setting x learning rate, each optimizer's rows
  together (RAdam's beside the warmed-up ones), for studies whose grid varies the warmup.
- ``expected_max_figure``: expected best accuracy against the tuning budget k (configurations
  drawn at random from the grid, k = 1..N), one line per optimizer and, in a warmup study, one
  per warmup setting (Dodge et al. 2019's expected validation performance curve).

A sampled study (``summary.sampled``) has ``sampled_figures``' tuning_curve and lr_samples
instead; ``figure_names`` says which a study has, ``render`` draws one by name.

Headless: the Agg canvas is used directly, never pyplot's global state, so it is thread-safe
enough for the service and needs no display.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from studies.analysis.labels import decimals, format_lr, optimizer_label, warmup_label
from studies.analysis.sampled_figures import lr_samples_figure, tuning_curve_figure
from studies.analysis.summary import CellSummary, StudySummary
from studies.spec import StudySpec

PANEL_SIZE = (4.2, 3.4)  # inches per Figure-6 panel
MAX_COLUMNS = 4  # Figure-6 panels per row
DPI = 120  # dots per inch of the PNGs
MAX_LEGEND_LRS = 8  # more learning rates per panel than this: a colour bar instead of legends
MAX_ANNOTATED_LRS = 12  # heatmap columns up to which each cell shows its number
SETTING_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1)))  # one warmup setting's expected-max line


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _title(summary: StudySummary, what: str) -> str:
    name = summary.name or summary.study_id
    suffix = (
        f" — partial, {summary.trials_done}/{summary.trials_total} trials"
        if summary.partial
        else ""
    )
    return f"{what}: {name}{suffix}" if name else f"{what}{suffix}"


def _panels(summary: StudySummary) -> list[tuple[str, str, int, list[CellSummary]]]:
    """(optimizer, warmup, warmup_steps, cells sorted by lr), in the summary's order."""
    panels: list[tuple[str, str, int, list[CellSummary]]] = []
    for cell in summary.cells:  # already sorted optimizer, warmup, lr
        if not panels or panels[-1][:3] != (cell.optimizer, cell.warmup, cell.warmup_steps):
            panels.append((cell.optimizer, cell.warmup, cell.warmup_steps, []))
        panels[-1][3].append(cell)
    return panels


RGBA = tuple[float, float, float, float]


def _lr_scale(lrs: Sequence[float]) -> tuple[ScalarMappable, Callable[[float], RGBA]]:
    """One colour per learning rate, the same in every panel: viridis (its too-pale top cut)
    over log10 lr. Returns the colour bar's mappable (for when there are too many lrs for a
    legend) and the lr -> colour function."""
    from matplotlib import colormaps

    cmap = ListedColormap(colormaps["viridis"](np.linspace(0.0, 0.9, 256)))
    low, high = (min(lrs), max(lrs)) if lrs else (1.0, 10.0)
    high = high if high > low else low * 10.0

    def color(lr: float) -> RGBA:
        position = (math.log10(lr) - math.log10(low)) / (math.log10(high) - math.log10(low))
        return cmap(min(1.0, max(0.0, position)))

    return ScalarMappable(norm=LogNorm(low, high), cmap=cmap), color


def figure6(summary: StudySummary) -> Figure:
    """Test accuracy against epoch, one panel per optimizer (x warmup), one line per lr."""
    panels = _panels(summary)
    ncols = max(1, min(MAX_COLUMNS, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig = _new_figure(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
    scale, color = _lr_scale(summary.lrs)
    with_legend = max((len(p[3]) for p in panels), default=0) <= MAX_LEGEND_LRS
    for ax, (optimizer, warmup, steps, cells) in zip(axes.flat, panels, strict=False):
        for cell in cells:
            _curve(ax, cell, color(cell.lr), _bounds(summary))
        title = optimizer_label(optimizer)
        if summary.varies_warmup:
            title += f", {warmup_label(warmup, steps)}"
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not with_legend:
            continue
        # Below the panel, not over the curves: high and low lrs end anywhere on the y-axis.
        ax.legend(
            title="learning rate",
            fontsize="small",
            title_fontsize="small",
            loc="upper center",
            bbox_to_anchor=(0.5, -0.2),
            ncols=min(4, len(cells)),
            frameon=False,
        )
    for ax in axes[:, 0]:
        ax.set_ylabel(summary.metric.axis_label())
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if not with_legend:  # dozens of lrs: a colour bar reads better than a legend
        fig.colorbar(scale, ax=axes, label="learning rate (log scale)", aspect=40)
    fig.suptitle(_title(summary, f"{_capital(summary.metric.label)} by learning rate"))
    return fig


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _bounds(summary: StudySummary) -> tuple[float, float]:
    """Where a metric's ± std bands are cut: 0..100 for accuracy in percent, else unbounded."""
    return (0.0, 100.0) if summary.metric.display_unit == "%" else (-math.inf, math.inf)


def _curve(ax: Axes, cell: CellSummary, color: RGBA, bounds: tuple[float, float]) -> None:
    mean = np.array([np.nan if v is None else v for v in cell.curve_mean_pct], dtype=float)
    if mean.size == 0:
        return
    epochs = np.arange(1, mean.size + 1)
    label = format_lr(cell.lr) + (f" ({cell.n_diverged} diverged)" if cell.n_diverged else "")
    ax.plot(epochs, mean, color=color, label=label, marker="o" if mean.size < 8 else None, ms=3)
    std = np.array([np.nan if v is None else v for v in cell.curve_std_pct], dtype=float)
    if np.isfinite(std).any():
        low, high = np.clip(mean - std, *bounds), np.clip(mean + std, *bounds)
        ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)


def lr_sensitivity(summary: StudySummary) -> Figure:
    """Final test accuracy against learning rate (log x), one line per optimizer (x warmup)."""
    fig = _new_figure(6.4, 4.4)
    ax = fig.subplots()
    for optimizer, warmup, steps, cells in _panels(summary):
        done = [c for c in cells if c.final_acc_mean_pct is not None]
        if not done:
            continue
        label = optimizer_label(optimizer)
        if summary.varies_warmup:
            label += f", {warmup_label(warmup, steps)}"
        ax.errorbar(
            [c.lr for c in done],
            [_nan(c.final_acc_mean_pct) for c in done],
            yerr=_bounded_errors(done, _bounds(summary)),
            label=label,
            marker="o",
            capsize=3,
        )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(f"final {summary.metric.axis_label()}")
    ax.set_title(_title(summary, "Sensitivity to the learning rate"), fontsize="medium")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return fig


def _bounded_errors(cells: Sequence[CellSummary], bounds: tuple[float, float]) -> list[list[float]]:
    """± one std, cut at the metric's bounds (0% and 100% for accuracy: a seed that diverged
    makes the std wider than that)."""
    means = [_nan(c.final_acc_mean_pct) for c in cells]
    stds = [c.final_acc_std_pct or 0.0 for c in cells]
    below = [min(std, mean - bounds[0]) for mean, std in zip(means, stds, strict=True)]
    above = [min(std, bounds[1] - mean) for mean, std in zip(means, stds, strict=True)]
    return [below, above]


def warmup_heatmap(summary: StudySummary) -> Figure | None:
    """Accuracy over warmup setting (rows, grouped by optimizer) x lr; None without warmup."""
    if not summary.warmup_tables:
        return None
    lrs = summary.lrs
    labels: list[str] = []
    values: list[list[float]] = []
    boundaries: list[int] = []
    # The warmed-up optimizers first, RAdam's rows under them: the comparison the paper makes.
    tables = sorted(summary.warmup_tables, key=lambda t: t.optimizer == "radam")
    for table in tables:
        for label, row in zip(table.labels, table.acc_pct, strict=True):
            labels.append(f"{optimizer_label(table.optimizer)}, {label}")
            by_lr = dict(zip(table.lrs, row, strict=True))
            values.append([_nan(by_lr.get(lr)) for lr in lrs])
        boundaries.append(len(labels))
    grid = np.array(values, dtype=float)
    annotate = len(lrs) <= MAX_ANNOTATED_LRS
    width = max(5.0, (1.1 if annotate else 0.25) * len(lrs) + 3.6)
    fig = _new_figure(min(width, 16.0), max(3.0, 0.45 * len(labels) + 1.6))
    ax = fig.subplots()
    higher = summary.metric.higher_is_better  # the better cells bright either way
    cmap = "viridis" if higher else "viridis_r"
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    fig.colorbar(image, ax=ax, label=f"final {summary.metric.axis_label()}")
    every = max(1, math.ceil(len(lrs) / MAX_ANNOTATED_LRS))  # thin the ticks, never overlap
    ticks = list(range(0, len(lrs), every))
    ax.set_xticks(
        ticks, [format_lr(float(f"{lrs[i]:.2g}")) for i in ticks], rotation=0 if annotate else 45
    )
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("learning rate")
    for end in boundaries[:-1]:  # a white rule between optimizers
        ax.axhline(end - 0.5, color="white", linewidth=3)
    finite = grid[np.isfinite(grid)]
    middle = float(finite.min() + finite.max()) / 2.0 if finite.size else 0.0
    for (i, j), value in np.ndenumerate(grid):
        if annotate and math.isfinite(value):
            ax.text(
                j,
                i,
                f"{value:.{decimals(summary.metric)}f}",
                ha="center",
                va="center",
                fontsize="small",
                color="black" if (value > middle) == higher else "white",
            )
    ax.set_title(_title(summary, "Warmup against learning rate"), fontsize="medium")
    return fig


def expected_max_figure(summary: StudySummary) -> Figure:
    """Expected best final accuracy against the budget k, one line per optimizer (x warmup)."""
    fig = _new_figure(6.4, 4.4)
    ax = fig.subplots()
    for number, opt in enumerate(summary.optimizers):
        curves = [(opt.label, opt.expected_max_pct)]
        if len(opt.expected_max_by_warmup) > 1:  # the whole grid, then each setting's lrs
            curves = [(f"{opt.label}, all warmups", opt.expected_max_pct)]
            curves += [
                (f"{opt.label}, {c.label}", c.expected_max_pct) for c in opt.expected_max_by_warmup
            ]
        elif opt.expected_max_by_warmup:
            curves = [(f"{opt.label}, {opt.expected_max_by_warmup[0].label}", opt.expected_max_pct)]
        color = f"C{number}"  # the optimizer's colour, shared by its warmup settings' lines
        for n, (label, curve) in enumerate(curves):
            if not curve:
                continue
            ax.plot(
                np.arange(1, len(curve) + 1),
                curve,
                label=label,
                color=color,
                marker="o" if len(curve) <= 20 else None,
                ms=3,
                linestyle="-" if n == 0 else SETTING_STYLES[(n - 1) % len(SETTING_STYLES)],
                linewidth=2.0 if n == 0 else 1.2,
            )
    ax.set_xlabel("configurations tried at random (k)")
    ax.set_ylabel(f"expected best final {summary.metric.axis_label()}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    what = "accuracy" if summary.metric.display_unit == "%" else summary.metric.label
    ax.set_title(_title(summary, f"Expected best {what} at a tuning budget"), fontsize="medium")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
    return fig


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


GRID_FIGURES = ("figure6", "lr_sensitivity", "expected_max", "warmup")
SAMPLED_FIGURES = ("tuning_curve", "lr_samples")  # studies.analysis.sampled_figures


def figure_names(summary: StudySummary) -> list[str]:
    """The figures this study has: a grid's, or a sampled study's."""
    if summary.sampled is not None:
        return list(SAMPLED_FIGURES)
    return [n for n in GRID_FIGURES if n != "warmup" or summary.varies_warmup]


def figure_names_for_spec(spec: StudySpec) -> list[str]:
    """The figures a study of this spec will have (``figure_names`` once it has a summary)."""
    if spec.sampled:
        return list(SAMPLED_FIGURES)
    return [n for n in GRID_FIGURES if n != "warmup" or spec.varies_warmup]


def render(summary: StudySummary, name: str) -> Figure | None:
    """One figure by name; None when the study has no such figure."""
    if name not in figure_names(summary):
        return None
    if summary.sampled is not None:
        title = _title(summary, "study")
        draw = tuning_curve_figure if name == "tuning_curve" else lr_samples_figure
        return draw(summary.sampled, title)
    grid: dict[str, Callable[[StudySummary], Figure | None]] = {
        "figure6": figure6,
        "lr_sensitivity": lr_sensitivity,
        "expected_max": expected_max_figure,
        "warmup": warmup_heatmap,
    }
    return grid[name](summary)


def write_figures(summary: StudySummary, out_dir: Path) -> list[Path]:
    """Write figure6.png/.svg, lr_sensitivity.png, expected_max.png/.svg and (warmup studies)
    warmup.png; a sampled study's tuning_curve and lr_samples (png and svg) instead."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if summary.sampled is not None:
        for name in SAMPLED_FIGURES:
            fig = render(summary, name)
            for suffix in ("png", "svg"):
                path = out_dir / f"{name}.{suffix}"
                if fig is not None:
                    fig.savefig(path)
                    written.append(path)
        return written
    fig6 = figure6(summary)
    for suffix in ("png", "svg"):
        path = out_dir / f"figure6.{suffix}"
        fig6.savefig(path)
        written.append(path)
    path = out_dir / "lr_sensitivity.png"
    lr_sensitivity(summary).savefig(path)
    written.append(path)
    budget = expected_max_figure(summary)
    for suffix in ("png", "svg"):
        path = out_dir / f"expected_max.{suffix}"
        budget.savefig(path)
        written.append(path)
    heat = warmup_heatmap(summary)
    if heat is not None:
        path = out_dir / "warmup.png"
        heat.savefig(path)
        written.append(path)
    return written
