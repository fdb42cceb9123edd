"""A ``StudySummary`` as text: the terminal table (``format_table``) and the per-cell CSV.

Optimizers (x warmup) as rows, learning rates as columns (final test accuracy, mean ± std over
seeds, percent), then per optimizer its best, mean regret, share within 1 point and expected
best at a budget of 1 and of N configurations; the verdict under it, one paragraph per pair.
"""

from __future__ import annotations

import csv
import io
import textwrap

from studies.analysis.labels import decimals, format_lr, is_accuracy, warmup_rank, warmup_short
from studies.analysis.sampled_tables import format_sampled_table
from studies.analysis.summary import CellSummary, OptimizerSummary, StudySummary

MAX_TABLE_LRS = 8  # learning rates shown as columns; more (Optuna) and the table goes long
OPTIMIZER_COLUMNS = ["regret", "≤1pt", "E[best] k=1/N"]


def format_table(summary: StudySummary, *, width: int = 100) -> str:
    """The summary as a terminal table: optimizers (x warmup) as rows, learning rates as
    columns (final test accuracy, mean ± std over seeds, percent), the verdict under it.

    A cell reads ``—`` when no seed has counted yet; ``*N`` marks N diverged seeds. A sampled
    study has a row per optimizer instead (``sampled_tables``).
    """
    if summary.sampled is not None:
        return format_sampled_table(summary, width=width)
    head = "Study" + (f" {summary.study_id}" if summary.study_id else "")
    head += f" ({summary.name})" if summary.name else ""
    state = "partial" if summary.partial else "complete"
    lines = [
        f"{head}: {summary.trials_done} of {summary.trials_total} trials done ({state}), "
        f"{summary.epochs} epochs.",
        f"Final {_what(summary)} (mean ± std over seeds; *N = N seeds diverged)"
        + ("; warmup lengths in iterations." if summary.varies_warmup else "."),
    ]
    best = "best (lr, warmup)" if summary.varies_warmup else "best (lr)"
    per_optimizer = _render(
        ["optimizer", best, *_columns(summary)],
        [[o.label, *_optimizer_columns(o, summary)] for o in summary.optimizers],
    )
    wide = _render(*_wide_table(summary))
    if len(summary.lrs) <= MAX_TABLE_LRS and max(map(len, wide)) <= width:
        lines += wide
    elif len(summary.lrs) <= MAX_TABLE_LRS:  # too wide: the grid, then the optimizers
        lines += [*_render(*_wide_table(summary, with_optimizer=False)), "", *per_optimizer]
    else:  # an Optuna study samples many lrs: one row per grid cell, then the optimizers
        lines += [*_render(*_long_table(summary)), "", *per_optimizer]
    lines += textwrap.wrap(_footnote(summary), width=width)
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
        key=lambda s: warmup_rank(*s),
    )


def _row_name(summary: StudySummary, opt: OptimizerSummary, warmup: str, steps: int) -> str:
    return opt.label + (f", {warmup_short(warmup, steps)}" if summary.varies_warmup else "")


def _wide_table(
    summary: StudySummary, *, with_optimizer: bool = True
) -> tuple[list[str], list[list[str]]]:
    """Rows: optimizer (x warmup); columns: learning rates, then (``with_optimizer``) the
    optimizer's best, regret, share within 1 point and expected best on its first row."""
    lrs = summary.lrs
    by_cell = {(c.optimizer, c.warmup, c.warmup_steps, c.lr): c for c in summary.cells}
    best = "best (lr, warmup)" if summary.varies_warmup else "best (lr)"
    header = ["optimizer", *(f"lr={format_lr(lr)}" for lr in lrs)]
    header += [best, *_columns(summary)] if with_optimizer else []
    rows: list[list[str]] = []
    for opt in summary.optimizers:
        for n, (warmup, steps) in enumerate(_settings(summary, opt.optimizer)):
            cells = [
                _table_cell(by_cell.get((opt.optimizer, warmup, steps, lr)), summary) for lr in lrs
            ]
            extra = (
                _optimizer_columns(opt, summary) if n == 0 else [""] * (1 + len(OPTIMIZER_COLUMNS))
            )
            rows.append(
                [_row_name(summary, opt, warmup, steps), *cells, *(extra if with_optimizer else [])]
            )
    return header, rows


def _long_table(summary: StudySummary) -> tuple[list[str], list[list[str]]]:
    rows: list[list[str]] = []
    for opt in summary.optimizers:
        for cell in summary.cells_of(opt.optimizer):
            name = _row_name(summary, opt, cell.warmup, cell.warmup_steps)
            rows.append([name, f"{cell.lr:.3g}", _table_cell(cell, summary), str(cell.n_seeds)])
    final = "final acc" if _is_accuracy(summary) else f"final {summary.metric.name}"
    return ["optimizer", "lr", final, "seeds"], rows


def _is_accuracy(summary: StudySummary) -> bool:
    return is_accuracy(summary.metric)


def _what(summary: StudySummary) -> str:
    """``test accuracy, %``: the metric's label and display unit."""
    return f"{summary.metric.label}, {summary.metric.shown_unit}"


def _columns(summary: StudySummary) -> list[str]:
    if _is_accuracy(summary):
        return list(OPTIMIZER_COLUMNS)
    return ["regret", f"≤{summary.metric.threshold:g}", "E[best] k=1/N"]


def _footnote(summary: StudySummary) -> str:
    if _is_accuracy(summary):
        return (
            "regret: mean over the grid of best - accuracy (points); E[best] k=1/N: expected best "
            "accuracy of 1 and of all N configurations tried at random (Dodge et al. 2019)."
        )
    m = summary.metric
    better = "higher" if m.higher_is_better else "lower"
    return (
        f"{m.label}: {better} is better. regret: mean over the grid of the distance to the best "
        f"({m.shown_unit}); ≤{m.threshold:g}: share of the grid within {m.threshold:g} "
        f"{m.shown_unit} of the best; E[best] k=1/N: expected best {m.label} of 1 and of all N "
        "configurations tried at random (Dodge et al. 2019)."
    )


def _table_cell(cell: CellSummary | None, summary: StudySummary) -> str:
    if cell is None or cell.final_acc_mean_pct is None:
        return "—"
    d = decimals(summary.metric)
    text = f"{cell.final_acc_mean_pct:.{d}f}"
    if cell.final_acc_std_pct is not None:
        text += f"±{cell.final_acc_std_pct:.{d}f}"
    if cell.n_diverged:
        text += f" *{cell.n_diverged}"
    return text


def _optimizer_columns(opt: OptimizerSummary, summary: StudySummary) -> list[str]:
    varies_warmup, d = summary.varies_warmup, decimals(summary.metric)
    if opt.best_acc_pct is None or opt.best_lr is None or opt.mean_regret_pct is None:
        return ["—"] * (1 + len(OPTIMIZER_COLUMNS))
    share = opt.share_within_1pt if opt.share_within_1pt is not None else 0.0
    where = format_lr(opt.best_lr)
    if varies_warmup and opt.best_warmup is not None:
        where += ", " + warmup_short(opt.best_warmup, opt.best_warmup_steps or 0)
    budget = opt.expected_max_pct
    return [
        f"{opt.best_acc_pct:.{d}f} ({where})",
        f"{opt.mean_regret_pct:.{d}f}",
        f"{share:.0%}",
        f"{budget[0]:.{d}f}/{budget[-1]:.{d}f}" if budget else "—",
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


def csv_columns(summary: StudySummary) -> list[str]:
    """``CELL_CSV_COLUMNS``, the metric's name in accuracy's place for another metric."""
    if _is_accuracy(summary):
        return list(CELL_CSV_COLUMNS)
    name = summary.metric.name
    return [
        c.replace("acc", name).removesuffix("_pct") if "acc" in c else c for c in CELL_CSV_COLUMNS
    ]


def format_cells_csv(summary: StudySummary) -> str:
    """One CSV row per grid cell (percent accuracies; empty where there is no value). A study
    with another metric names its columns after it (``final_val_loss_mean``, display units)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_columns(summary))
    for cell in summary.cells:
        row = cell.model_dump()
        writer.writerow(["" if row[c] is None else row[c] for c in CELL_CSV_COLUMNS])
    return buffer.getvalue()
