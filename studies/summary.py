"""Robustness summaries: trial records in, one ``StudySummary`` out (pure functions).

What it claims, per the RAdam paper's robustness study (Liu et al. 2019, Figure 6):

- per grid cell (optimizer x lr x warmup x warmup_steps): final and best test accuracy, mean and
  sample standard deviation over seeds, seed and divergence counts, the per-epoch mean/std curve;
- per optimizer over its grid: best configuration, worst accuracy, spread, mean regret
  (mean over the grid of best - accuracy, an LR-sensitivity measure in the spirit of Wortsman et
  al. 2023) and the share of the grid within 1 point of the best (DeepOBS's "easy to tune");
- a verdict per pair of optimizers: the difference in mean regret with a 95% percentile
  bootstrap interval over seeds, and a sentence that only says "less sensitive" when the interval
  excludes 0.

Conventions (the evidence behind each number):

- Accuracies are percent (0..100) here, fractions in ``TrialRecord``; fields say ``_pct``.
- "Accuracy" of a cell = the mean over its seeds of each trial's final test accuracy.
- Trials that count: ``finished`` and ``diverged``. A diverged trial counts with the accuracy it
  had: its last finite test accuracy, and its curve stays at that value for the remaining
  epochs. One that never reported a finite accuracy (it diverged in its first epoch) counts
  with ``no_accuracy_pct``: 0 by default, chance level (10% for the ten-class datasets) when
  ``studies.report`` knows the dataset, as a diverged network's argmax is no better. ``failed`` trials (crashes, not the optimizer's doing) and
  ``running``/``pending`` ones are counted but not averaged.
- Bootstrap: seeds are resampled within each cell (independently per cell), ``resamples`` times
  with a fixed RNG seed; the regret is recomputed on each resample. An interval needs at least two
  seeds in every cell of both optimizers; otherwise it is ``None`` and the verdict cannot tell.

Vectorised with numpy: a 1000-trial, 164-epoch study summarises in well under a second
(``bench/summary.py`` prints the figure).
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from studies.results import TrialRecord
from studies.status import ACTIVE_STUDY, COUNTED_TRIAL, TERMINAL_TRIAL

#: Optimizers in the order tables, panels and comparisons list them; unknown names follow.
OPTIMIZER_ORDER: tuple[str, ...] = ("radam", "adam", "adamw", "sgd")
OPTIMIZER_LABELS: dict[str, str] = {
    "radam": "RAdam",
    "adam": "Adam",
    "adamw": "AdamW",
    "sgd": "SGD",
}
WARMUP_ORDER: tuple[str, ...] = ("none", "linear", "untuned_linear", "untuned_exponential")

#: Statuses whose accuracy counts (see the module docstring).
COUNTED = COUNTED_TRIAL
#: Statuses after which a trial will not change any more.
TERMINAL = TERMINAL_TRIAL

MAX_TABLE_LRS = 8  # learning rates shown as columns; more (Optuna) and the table goes long
WITHIN_POINTS = 1.0  # points (percent) of the best that count as "within reach"
CI_LEVEL = 0.95

FloatArray = npt.NDArray[np.float64]
CellKey = tuple[str, float, str, int]  # optimizer, lr, warmup, warmup_steps


def optimizer_label(name: str) -> str:
    return OPTIMIZER_LABELS.get(name, name)


def warmup_label(warmup: str, warmup_steps: int) -> str:
    """Human words for a warmup setting, e.g. ``linear warmup (2000 steps)``."""
    if warmup == "none":
        return "no warmup"
    if warmup == "linear":
        return f"linear warmup ({warmup_steps} steps)"
    return warmup.replace("_", " ") + " warmup"


def warmup_short(warmup: str, warmup_steps: int) -> str:
    """A table's few characters for a warmup setting, e.g. ``linear 2000``."""
    if warmup == "linear":
        return f"linear {warmup_steps}"
    return {"untuned_exponential": "untuned exp"}.get(warmup, warmup.replace("_", " "))


def format_lr(lr: float) -> str:
    return f"{lr:g}"


def _optimizer_rank(name: str) -> tuple[int, str]:
    return (OPTIMIZER_ORDER.index(name), "") if name in OPTIMIZER_ORDER else (99, name)


def _warmup_rank(warmup: str, steps: int) -> tuple[int, str, int]:
    if warmup in WARMUP_ORDER:
        return (WARMUP_ORDER.index(warmup), "", steps)
    return (99, warmup, steps)


def _cell_rank(key: CellKey) -> tuple[tuple[int, str], tuple[int, str, int], float]:
    optimizer, lr, warmup, steps = key
    return (_optimizer_rank(optimizer), _warmup_rank(warmup, steps), lr)


class CellSummary(BaseModel):
    """One grid cell: every seed of one (optimizer, lr, warmup, warmup_steps)."""

    optimizer: str
    lr: float
    warmup: str
    warmup_steps: int
    seeds: list[int] = Field(description="seeds whose accuracy counts (finished or diverged)")
    n_seeds: int
    n_diverged: int
    n_failed: int
    n_pending: int = Field(description="trials still running or not started")
    final_acc_mean_pct: float | None
    final_acc_std_pct: float | None = Field(description="sample std over seeds; None below 2")
    best_acc_mean_pct: float | None
    best_acc_std_pct: float | None
    curve_mean_pct: list[float | None] = Field(description="test accuracy after epoch i+1")
    curve_std_pct: list[float | None]

    @property
    def warmup_label(self) -> str:
        return warmup_label(self.warmup, self.warmup_steps)


class OptimizerSummary(BaseModel):
    """One optimizer over its grid (the cells with at least one counted seed)."""

    optimizer: str
    label: str
    n_cells: int
    best_lr: float | None
    best_warmup: str | None
    best_warmup_steps: int | None
    best_acc_pct: float | None
    worst_acc_pct: float | None
    spread_pct: float | None = Field(description="best - worst, points")
    mean_regret_pct: float | None = Field(description="mean over the grid of best - accuracy")
    mean_regret_ci_pct: tuple[float, float] | None = Field(description="95% bootstrap interval")
    share_within_1pt: float | None = Field(description="fraction of the grid within 1 point")


class Comparison(BaseModel):
    """Optimizer ``a`` against ``b``: difference in mean regret (a - b), negative favours a."""

    a: str
    b: str
    regret_a_pct: float
    regret_b_pct: float
    regret_a_ci_pct: tuple[float, float] | None
    regret_b_ci_pct: tuple[float, float] | None
    diff_pct: float
    diff_ci_pct: tuple[float, float] | None
    less_sensitive: str | None = Field(description="the optimizer the data favours, if any")
    sentence: str


class WarmupTable(BaseModel):
    """Final accuracy (mean over seeds, percent) of one optimizer over warmup x lr."""

    optimizer: str
    lrs: list[float]
    warmups: list[str]
    warmup_steps: list[int]
    labels: list[str]
    acc_pct: list[list[float | None]] = Field(description="rows: warmups, columns: lrs")


class StudySummary(BaseModel):
    """Everything the report, the service and the figures need, JSON round-trippable."""

    study_id: str = ""
    name: str = ""
    status: str | None = None
    trials_done: int = Field(description="trials in a terminal state")
    trials_total: int
    trials_counted: int = Field(description="finished or diverged: their accuracy counts")
    trials_failed: int
    partial: bool
    epochs: int
    varies_warmup: bool
    accuracy_unit: Literal["percent"] = "percent"
    bootstrap_resamples: int
    bootstrap_seed: int
    cells: list[CellSummary]
    optimizers: list[OptimizerSummary]
    comparisons: list[Comparison]
    verdict: str
    warmup_tables: list[WarmupTable]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudySummary:
        return cls.model_validate(dict(data))

    @classmethod
    def from_json(cls, text: str | bytes) -> StudySummary:
        return cls.model_validate_json(text)

    @property
    def lrs(self) -> list[float]:
        return sorted({cell.lr for cell in self.cells})

    def cells_of(self, optimizer: str) -> list[CellSummary]:
        return [cell for cell in self.cells if cell.optimizer == optimizer]


def summarize(
    trials: Sequence[TrialRecord],
    *,
    study_id: str = "",
    name: str = "",
    status: str | None = None,
    trials_total: int | None = None,
    resamples: int = 2000,  # bootstrap resamples
    rng_seed: int = 0,  # the bootstrap's RNG seed, fixed so the summary is reproducible
    no_accuracy_pct: float = 0.0,  # percent; a counted trial without any finite accuracy
) -> StudySummary:
    """Summarise a study's trials (finished or still running; any grid, not only presets)."""
    keys = sorted({_key(t) for t in trials}, key=_cell_rank)
    index = {key: i for i, key in enumerate(keys)}
    counted = [t for t in trials if t.status in COUNTED]
    epochs = max((t.epochs_done for t in trials), default=0)

    # (n_counted, epochs), percent, forward-filled
    curves = _curve_matrix(counted, epochs, no_accuracy_pct=no_accuracy_pct)
    finals = curves[:, -1] if epochs else np.full(len(counted), no_accuracy_pct)
    bests = np.nanmax(curves, axis=1) if epochs else np.full(len(counted), no_accuracy_pct)
    cell_of = np.fromiter((index[_key(t)] for t in counted), dtype=np.int64, count=len(counted))

    cells: list[CellSummary] = []
    seed_finals: list[FloatArray] = []  # per cell, the final accuracy of each counted seed
    order = np.argsort(cell_of, kind="stable")
    bounds = np.searchsorted(cell_of[order], np.arange(len(keys) + 1))
    for i, key in enumerate(keys):
        rows = order[bounds[i] : bounds[i + 1]]
        seed_finals.append(finals[rows])
        cells.append(
            _cell_summary(
                key, rows=rows, curves=curves, finals=finals, bests=bests, counted=counted
            )
        )
    _count_statuses(cells, trials, index)

    boot = _bootstrap_cell_means(seed_finals, resamples=resamples, rng_seed=rng_seed)
    optimizers = [
        _optimizer_summary(name_, [i for i, k in enumerate(keys) if k[0] == name_], cells, boot)
        for name_ in sorted({k[0] for k in keys}, key=_optimizer_rank)
    ]
    varies_warmup = len({(k[2], k[3]) for k in keys}) > 1
    comparisons = _comparisons(optimizers, keys, boot, varies_warmup=varies_warmup)

    total = max(trials_total or 0, len(trials))
    done = sum(1 for t in trials if t.status in TERMINAL)
    # Partial while trials remain; with no known total, trust the study's own status.
    partial = done < total or (trials_total is None and status in ACTIVE_STUDY)
    return StudySummary(
        study_id=study_id,
        name=name,
        status=status,
        trials_done=done,
        trials_total=total,
        trials_counted=len(counted),
        trials_failed=sum(1 for t in trials if t.status == "failed"),
        partial=partial,
        epochs=epochs,
        varies_warmup=varies_warmup,
        bootstrap_resamples=resamples,
        bootstrap_seed=rng_seed,
        cells=cells,
        optimizers=optimizers,
        comparisons=comparisons,
        verdict=_verdict(comparisons, optimizers, done=done, total=total, partial=partial),
        warmup_tables=_warmup_tables(cells) if varies_warmup else [],
    )


def _key(trial: TrialRecord) -> CellKey:
    return (trial.optimizer, float(trial.lr), trial.warmup, int(trial.warmup_steps))


def _curve_matrix(
    counted: Sequence[TrialRecord], epochs: int, *, no_accuracy_pct: float
) -> FloatArray:
    """Test-accuracy curves in percent, one row per trial, forward-filled to ``epochs``.

    Forward fill is what "a diverged trial counts with the accuracy it had" means per epoch;
    epochs before a trial's first finite accuracy count as ``no_accuracy_pct``.
    """
    matrix = np.full((len(counted), epochs), np.nan)
    for row, trial in enumerate(counted):
        accs = trial.history.get("test_acc", [])
        matrix[row, : len(accs)] = accs
    matrix *= 100.0
    if epochs == 0:
        return matrix
    finite = np.isfinite(matrix)
    last = np.where(finite, np.arange(epochs)[None, :], -1)
    np.maximum.accumulate(last, axis=1, out=last)
    filled = np.take_along_axis(matrix, np.maximum(last, 0), axis=1)
    filled[last < 0] = no_accuracy_pct
    return filled


def _mean_std(values: FloatArray) -> tuple[float | None, float | None]:
    if values.size == 0:
        return None, None
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else None
    return mean, std


def _cell_summary(
    key: CellKey,
    *,
    rows: npt.NDArray[np.int64],
    curves: FloatArray,
    finals: FloatArray,
    bests: FloatArray,
    counted: Sequence[TrialRecord],
) -> CellSummary:
    optimizer, lr, warmup, steps = key
    members = [counted[r] for r in rows]
    # A diverged seed is held at its last accuracy to the study's last epoch (as in the paper's
    # Figure 6, where diverged runs are flat lines), so its cell's curve runs that long too.
    diverged = any(t.status == "diverged" for t in members)
    length = curves.shape[1] if diverged else max((t.epochs_done for t in members), default=0)
    block = curves[rows, :length]
    curve_mean = block.mean(axis=0) if rows.size else np.zeros(0)
    curve_std = block.std(axis=0, ddof=1) if rows.size > 1 else None
    final_mean, final_std = _mean_std(finals[rows])
    best_mean, best_std = _mean_std(bests[rows])
    return CellSummary(
        optimizer=optimizer,
        lr=lr,
        warmup=warmup,
        warmup_steps=steps,
        seeds=sorted(t.seed for t in members),
        n_seeds=len(members),
        n_diverged=sum(1 for t in members if t.status == "diverged"),
        n_failed=0,
        n_pending=0,
        final_acc_mean_pct=final_mean,
        final_acc_std_pct=final_std,
        best_acc_mean_pct=best_mean,
        best_acc_std_pct=best_std,
        curve_mean_pct=[float(v) for v in curve_mean],
        curve_std_pct=[float(v) for v in curve_std] if curve_std is not None else [None] * length,
    )


def _count_statuses(
    cells: list[CellSummary], trials: Sequence[TrialRecord], index: Mapping[CellKey, int]
) -> None:
    for trial in trials:
        cell = cells[index[_key(trial)]]
        if trial.status == "failed":
            cell.n_failed += 1
        elif trial.status not in COUNTED:
            cell.n_pending += 1


def _bootstrap_cell_means(
    seed_finals: Sequence[FloatArray], *, resamples: int, rng_seed: int
) -> FloatArray | None:
    """Resampled cell means, shape (resamples, n_cells); None if some cell has < 2 seeds.

    Cells are grouped by their seed count so each group is one fancy-indexing operation.
    """
    counts = [len(f) for f in seed_finals if len(f)]
    if not counts or min(counts) < 2 or resamples < 1:
        return None
    rng = np.random.default_rng(rng_seed)
    out = np.full((resamples, len(seed_finals)), np.nan)
    for k in sorted(set(counts)):
        cols = [i for i, f in enumerate(seed_finals) if len(f) == k]
        values = np.stack([seed_finals[i] for i in cols])  # (m, k)
        picks = rng.integers(0, k, size=(resamples, len(cols), k))
        out[:, cols] = np.take_along_axis(values[None, :, :], picks, axis=2).mean(axis=2)
    return out


def _interval(samples: FloatArray) -> tuple[float, float]:
    tail = (1.0 - CI_LEVEL) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def _regret_samples(boot: FloatArray | None, cols: Sequence[int]) -> FloatArray | None:
    if boot is None or not cols:
        return None
    block = boot[:, list(cols)]
    return block.max(axis=1) - block.mean(axis=1)  # type: ignore[no-any-return]


def _optimizer_summary(
    optimizer: str, cols: list[int], cells: list[CellSummary], boot: FloatArray | None
) -> OptimizerSummary:
    live = [i for i in cols if cells[i].final_acc_mean_pct is not None]
    label = optimizer_label(optimizer)
    if not live:
        return OptimizerSummary(
            optimizer=optimizer,
            label=label,
            n_cells=0,
            best_lr=None,
            best_warmup=None,
            best_warmup_steps=None,
            best_acc_pct=None,
            worst_acc_pct=None,
            spread_pct=None,
            mean_regret_pct=None,
            mean_regret_ci_pct=None,
            share_within_1pt=None,
        )
    accs = np.array([cells[i].final_acc_mean_pct for i in live], dtype=np.float64)
    best_at = int(np.argmax(accs))
    best, worst = float(accs[best_at]), float(accs.min())
    samples = _regret_samples(boot, live)
    best_cell = cells[live[best_at]]
    return OptimizerSummary(
        optimizer=optimizer,
        label=label,
        n_cells=len(live),
        best_lr=best_cell.lr,
        best_warmup=best_cell.warmup,
        best_warmup_steps=best_cell.warmup_steps,
        best_acc_pct=best,
        worst_acc_pct=worst,
        spread_pct=best - worst,
        mean_regret_pct=float(best - accs.mean()),
        mean_regret_ci_pct=_interval(samples) if samples is not None else None,
        share_within_1pt=float(np.mean(accs >= best - WITHIN_POINTS - 1e-9)),
    )


def _pairs(optimizers: Sequence[OptimizerSummary]) -> list[tuple[str, str]]:
    """Every pair once, RAdam's pairs first (against Adam, then AdamW, then the rest)."""
    names = [o.optimizer for o in optimizers]  # already in OPTIMIZER_ORDER
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


def _fmt_ci(ci: tuple[float, float] | None) -> str:
    return f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci is not None else ""


def _comparisons(
    optimizers: Sequence[OptimizerSummary],
    keys: Sequence[CellKey],
    boot: FloatArray | None,
    *,
    varies_warmup: bool,
) -> list[Comparison]:
    by_name = {o.optimizer: o for o in optimizers}
    what = "the learning rate and warmup" if varies_warmup else "the learning rate"
    out: list[Comparison] = []
    for a, b in _pairs(optimizers):
        sa, sb = by_name[a], by_name[b]
        if sa.mean_regret_pct is None or sb.mean_regret_pct is None:
            continue
        la, lb = sa.label, sb.label
        diff = sa.mean_regret_pct - sb.mean_regret_pct
        regrets = (
            f"regret {sa.mean_regret_pct:.1f}{_fmt_ci(sa.mean_regret_ci_pct)} against "
            f"{sb.mean_regret_pct:.1f}{_fmt_ci(sb.mean_regret_ci_pct)} points"
        )
        samples_a = _regret_samples(boot, _live_cols(a, keys, boot))
        samples_b = _regret_samples(boot, _live_cols(b, keys, boot))
        diff_ci = (
            _interval(samples_a - samples_b)
            if samples_a is not None and samples_b is not None
            else None
        )
        winner: str | None = None
        if diff_ci is None:
            sentence = (
                f"Cannot tell whether {la} or {lb} is less sensitive to {what} on this grid: "
                f"{regrets}, but some configuration has a single seed, so there is no interval."
            )
        elif diff_ci[0] > 0 or diff_ci[1] < 0:
            winner = a if diff < 0 else b
            better, worse = (sa, sb) if winner == a else (sb, sa)
            sentence = (
                f"{better.label} is less sensitive to {what} than {worse.label} on this grid: "
                f"regret {better.mean_regret_pct:.1f}{_fmt_ci(better.mean_regret_ci_pct)} against "
                f"{worse.mean_regret_pct:.1f}{_fmt_ci(worse.mean_regret_ci_pct)} points "
                f"(difference {abs(diff):.1f}{_fmt_ci(_abs_ci(diff_ci))})."
            )
        else:
            sentence = (
                f"Cannot tell {la} and {lb} apart on sensitivity to {what} on this grid: "
                f"{regrets}; the difference {diff:+.1f}{_fmt_ci(diff_ci)} includes 0."
            )
        out.append(
            Comparison(
                a=a,
                b=b,
                regret_a_pct=sa.mean_regret_pct,
                regret_b_pct=sb.mean_regret_pct,
                regret_a_ci_pct=sa.mean_regret_ci_pct,
                regret_b_ci_pct=sb.mean_regret_ci_pct,
                diff_pct=diff,
                diff_ci_pct=diff_ci,
                less_sensitive=winner,
                sentence=sentence,
            )
        )
    return out


def _abs_ci(ci: tuple[float, float]) -> tuple[float, float]:
    """The interval of |difference|, for an interval that excludes 0."""
    return (ci[0], ci[1]) if ci[0] > 0 else (-ci[1], -ci[0])


def _live_cols(optimizer: str, keys: Sequence[CellKey], boot: FloatArray | None) -> list[int]:
    if boot is None:
        return []
    cols = [i for i, k in enumerate(keys) if k[0] == optimizer]
    return [i for i in cols if not math.isnan(float(boot[0, i]))]


def _verdict(
    comparisons: Sequence[Comparison],
    optimizers: Sequence[OptimizerSummary],
    *,
    done: int,
    total: int,
    partial: bool,
) -> str:
    if not any(o.n_cells for o in optimizers):
        return f"No finished trials yet ({done} of {total} done)."
    if not comparisons:
        names = ", ".join(o.label for o in optimizers if o.n_cells)
        text = f"Nothing to compare: only {names} has finished trials."
    else:
        text = " ".join(c.sentence for c in comparisons)
    if partial:
        text = f"So far ({done} of {total} trials done): {text}"
    return text


def _warmup_tables(cells: Sequence[CellSummary]) -> list[WarmupTable]:
    tables: list[WarmupTable] = []
    for optimizer in sorted({c.optimizer for c in cells}, key=_optimizer_rank):
        own = [c for c in cells if c.optimizer == optimizer]
        lrs = sorted({c.lr for c in own})
        settings = sorted({(c.warmup, c.warmup_steps) for c in own}, key=lambda s: _warmup_rank(*s))
        grid: list[list[float | None]] = [[None] * len(lrs) for _ in settings]
        for c in own:
            grid[settings.index((c.warmup, c.warmup_steps))][lrs.index(c.lr)] = c.final_acc_mean_pct
        tables.append(
            WarmupTable(
                optimizer=optimizer,
                lrs=lrs,
                warmups=[w for w, _ in settings],
                warmup_steps=[s for _, s in settings],
                labels=[warmup_label(w, s) for w, s in settings],
                acc_pct=grid,
            )
        )
    return tables


def format_table(summary: StudySummary, *, width: int = 100) -> str:
    """The summary as a terminal table: optimizers (x warmup) as rows, learning rates as
    columns (final test accuracy, mean ± std over seeds, percent), the verdict under it.

    A cell reads ``—`` when no seed has counted yet; ``*N`` marks N diverged seeds.
    """
    head = "Study" + (f" {summary.study_id}" if summary.study_id else "")
    head += f" ({summary.name})" if summary.name else ""
    state = "partial" if summary.partial else "complete"
    lines = [
        f"{head}: {summary.trials_done} of {summary.trials_total} trials done ({state}), "
        f"{summary.epochs} epochs.",
        "Final test accuracy, % (mean ± std over seeds; *N = N seeds diverged)"
        + ("; warmup lengths in iterations." if summary.varies_warmup else "."),
    ]
    best = "best (lr, warmup)" if summary.varies_warmup else "best (lr)"
    per_optimizer = _render(
        ["optimizer", best, "regret", "≤1pt"],
        [[o.label, *_optimizer_columns(o, summary.varies_warmup)] for o in summary.optimizers],
    )
    wide = _render(*_wide_table(summary))
    if len(summary.lrs) <= MAX_TABLE_LRS and max(map(len, wide)) <= width:
        lines += wide
    elif len(summary.lrs) <= MAX_TABLE_LRS:  # too wide: the grid, then the optimizers
        lines += [*_render(*_wide_table(summary, with_optimizer=False)), "", *per_optimizer]
    else:  # an Optuna study samples many lrs: one row per grid cell, then the optimizers
        lines += [*_render(*_long_table(summary)), "", *per_optimizer]
    lines.append("")
    if not summary.comparisons:
        lines.extend(textwrap.wrap("Verdict: " + summary.verdict, width=width))
        return "\n".join(lines)
    so_far = f" so far ({summary.trials_done} of {summary.trials_total} trials done)"
    lines.append("Verdict:" + (so_far if summary.partial else ""))
    for comparison in summary.comparisons:  # one paragraph per pair
        lines.extend(
            textwrap.wrap(
                comparison.sentence, width=width, initial_indent="- ", subsequent_indent="  "
            )
        )
    return "\n".join(lines)


def _render(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned first column, right-aligned others, two spaces apart."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        left = row[0].ljust(widths[0])
        rest = "  ".join(value.rjust(w) for value, w in zip(row[1:], widths[1:], strict=True))
        out.append(f"{left}  {rest}".rstrip())
    return out


def _settings(summary: StudySummary, optimizer: str) -> list[tuple[str, int]]:
    return sorted(
        {(c.warmup, c.warmup_steps) for c in summary.cells_of(optimizer)},
        key=lambda s: _warmup_rank(*s),
    )


def _row_name(summary: StudySummary, opt: OptimizerSummary, warmup: str, steps: int) -> str:
    return opt.label + (f", {warmup_short(warmup, steps)}" if summary.varies_warmup else "")


def _wide_table(
    summary: StudySummary, *, with_optimizer: bool = True
) -> tuple[list[str], list[list[str]]]:
    """Rows: optimizer (x warmup); columns: learning rates, then (``with_optimizer``) the
    optimizer's best, regret and share within 1 point on its first row."""
    lrs = summary.lrs
    by_cell = {(c.optimizer, c.warmup, c.warmup_steps, c.lr): c for c in summary.cells}
    best = "best (lr, warmup)" if summary.varies_warmup else "best (lr)"
    header = ["optimizer", *(f"lr={format_lr(lr)}" for lr in lrs)]
    header += [best, "regret", "≤1pt"] if with_optimizer else []
    rows: list[list[str]] = []
    for opt in summary.optimizers:
        for n, (warmup, steps) in enumerate(_settings(summary, opt.optimizer)):
            cells = [_table_cell(by_cell.get((opt.optimizer, warmup, steps, lr))) for lr in lrs]
            extra = _optimizer_columns(opt, summary.varies_warmup) if n == 0 else ["", "", ""]
            rows.append(
                [_row_name(summary, opt, warmup, steps), *cells, *(extra if with_optimizer else [])]
            )
    return header, rows


def _long_table(summary: StudySummary) -> tuple[list[str], list[list[str]]]:
    rows: list[list[str]] = []
    for opt in summary.optimizers:
        for cell in summary.cells_of(opt.optimizer):
            name = _row_name(summary, opt, cell.warmup, cell.warmup_steps)
            rows.append([name, f"{cell.lr:.3g}", _table_cell(cell), str(cell.n_seeds)])
    return ["optimizer", "lr", "final acc", "seeds"], rows


def _table_cell(cell: CellSummary | None) -> str:
    if cell is None or cell.final_acc_mean_pct is None:
        return "—"
    text = f"{cell.final_acc_mean_pct:.1f}"
    if cell.final_acc_std_pct is not None:
        text += f"±{cell.final_acc_std_pct:.1f}"
    if cell.n_diverged:
        text += f" *{cell.n_diverged}"
    return text


def _optimizer_columns(opt: OptimizerSummary, varies_warmup: bool) -> list[str]:
    if opt.best_acc_pct is None or opt.best_lr is None or opt.mean_regret_pct is None:
        return ["—", "—", "—"]
    share = opt.share_within_1pt if opt.share_within_1pt is not None else 0.0
    where = format_lr(opt.best_lr)
    if varies_warmup and opt.best_warmup is not None:
        where += ", " + warmup_short(opt.best_warmup, opt.best_warmup_steps or 0)
    return [
        f"{opt.best_acc_pct:.1f} ({where})",
        f"{opt.mean_regret_pct:.1f}{_fmt_ci(opt.mean_regret_ci_pct)}",
        f"{share:.0%}",
    ]


CELL_CSV_COLUMNS: tuple[str, ...] = (
    "optimizer",
    "lr",
    "warmup",
    "warmup_steps",
    "n_seeds",
    "n_diverged",
    "n_failed",
    "n_pending",
    "final_acc_mean_pct",
    "final_acc_std_pct",
    "best_acc_mean_pct",
    "best_acc_std_pct",
)


def format_cells_csv(summary: StudySummary) -> str:
    """One CSV row per grid cell (percent accuracies; empty where there is no value)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CELL_CSV_COLUMNS)
    for cell in summary.cells:
        row = cell.model_dump()
        writer.writerow(["" if row[c] is None else row[c] for c in CELL_CSV_COLUMNS])
    return buffer.getvalue()
