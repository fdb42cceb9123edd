"""A sampled study as text: one row per optimizer (its searches), then the verdict.

Columns: the best found (over every repeat) and its lr and warmup, the tuning-curve area
(mean over repeats of the mean best-so-far over k = 1..N), the best after N (mean over
repeats, ± std when there are several), and for random search E[best] at k = 1 and at N.
"""

from __future__ import annotations

import math
import statistics
import textwrap

from studies.analysis.labels import format_lr, warmup_short
from studies.analysis.sampled import SampledOptimizer
from studies.analysis.summary import StudySummary


def format_sampled_table(summary: StudySummary, *, width: int = 100) -> str:
    sampled = summary.sampled
    assert sampled is not None, "a sampled study's summary"
    head = "Study" + (f" {summary.study_id}" if summary.study_id else "")
    head += f" ({summary.name})" if summary.name else ""
    state = "partial" if summary.partial else "complete"
    search = "TPE" if sampled.kind == "optuna" else "random search"
    n = sampled.num_samples
    lines = [
        f"{head}: {summary.trials_done} of {summary.trials_total} trials done ({state}), "
        f"{summary.epochs} epochs.",
        f"{search}, per optimizer: {n} configurations x {sampled.repeats} repeat(s), each "
        f"configuration averaged over its seeds. Final {sampled.metric_label}, {sampled.unit}.",
    ]
    random = sampled.kind == "random"
    header = ["optimizer", "best found", "lr", "warmup", "area", f"best@{n}"]
    header += ["E[best]@1", f"E[best]@{n}"] if random else []
    rows = [_row(o, random) for o in sampled.optimizers]
    lines += _render(header, rows)
    notes = (
        f"best found: over every repeat; area: tuning-curve area, the mean over k = 1..{n} of "
        f"the best so far (mean over repeats); best@{n}: the best after {n} configurations, "
        "mean ± std over repeats"
    )
    if random:
        notes += (
            "; E[best]@k: expected best of k random configurations, closed form over every "
            "sampled point (Dodge et al. 2019)"
        )
    lines += textwrap.wrap(notes + ".", width=width)
    lines.append("")
    lines.append("Verdict:" + (" so far" if summary.partial else ""))
    lines.extend(textwrap.wrap(sampled.verdict_head, width=width))
    for comparison in sampled.comparisons:
        lines.extend(
            textwrap.wrap(
                comparison.sentence, width=width, initial_indent="- ", subsequent_indent="  "
            )
        )
    return "\n".join(lines)


def _row(opt: SampledOptimizer, random: bool) -> list[str]:
    warmup = (
        "—"
        if opt.best_warmup is None
        else warmup_short(opt.best_warmup, opt.best_warmup_steps or 0)
    )
    bests = [b for b in opt.best_by_repeat_pct if b is not None]
    at_n = "—"
    if bests:
        at_n = f"{statistics.fmean(bests):.2f}"
        at_n += f" ± {statistics.stdev(bests):.2f}" if len(bests) > 1 else ""
    row = [
        opt.label,
        _pct(opt.best_pct),
        "—" if opt.best_lr is None else format_lr(float(f"{opt.best_lr:.3g}")),
        warmup,
        _pct(opt.area_pct),
        at_n,
    ]
    if random:
        em = opt.expected_max_pct
        row += [_pct(em[0]) if em else "—", _pct(em[-1]) if em else "—"]
    return row


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _render(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return out
