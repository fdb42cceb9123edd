"""What a sampled study (``search.kind`` ``optuna`` or ``random``) reports: per optimizer its
searches, not a grid.

Conventions (shared with ``summarize``): a trial's score is its final test accuracy in
percent; a diverged trial counts with the last accuracy it had (``no_accuracy_pct`` if none);
failed and unfinished trials do not count. A *point* is one sample of one search: the mean
over its seeds. Per optimizer:

- the tuning curve: per repeat, the best point so far against the number of configurations
  tried (sample order, 1..N), then its mean and band (min to max) over repeats;
- the tuning-curve area: the mean of that curve over k = 1..N (percent): high when the search
  finds good configurations early;
- the best found (over every repeat), with its lr and warmup;
- for random search, E[best] at k = 1..N: the expected best of k configurations drawn at
  random, in closed form over every sampled point (Dodge et al. 2019; the unbiased form,
  ``expected_max``), valid because random search's samples are independent draws from the
  space (TPE's are not, so it has none);
- every point (lr, warmup, score) for the figure of metric against log lr.

The verdict between two optimizers is ``sampled_verdict``'s. Which way is better comes from
``higher_is_better`` through ``direction`` only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from studies.analysis.direction import (
    ACCURACY_HIGHER_IS_BETTER,
    FloatArray,
    best_index,
    running_best,
    sign,
)
from studies.analysis.expected_max import expected_max
from studies.analysis.labels import optimizer_label, optimizer_rank
from studies.analysis.sampled_verdict import (
    DEFAULT_DRAWS,
    METHOD,
    SampledComparison,
    compare_searches,
)
from studies.results import TrialRecord
from studies.status import COUNTED_TRIAL


class SampledPoint(BaseModel):
    """One sample of one search: its configuration and its score (mean over seeds)."""

    repeat: int
    sample: int
    lr: float
    warmup: str
    warmup_steps: int
    score_pct: float | None = Field(description="None: no seed counted yet")
    n_seeds: int


class SampledOptimizer(BaseModel):
    """One optimizer's searches."""

    optimizer: str
    label: str
    repeats: int = Field(description="searches with at least one counted point")
    samples: int = Field(description="points with a score, over every repeat")
    best_pct: float | None
    best_lr: float | None
    best_warmup: str | None
    best_warmup_steps: int | None
    area_pct: float | None = Field(description="tuning-curve area, mean over repeats")
    curve_mean_pct: list[float | None] = Field(description="best so far after k = 1..N")
    curve_low_pct: list[float | None] = Field(description="band over repeats: the lowest")
    curve_high_pct: list[float | None]
    best_by_repeat_pct: list[float | None]
    area_by_repeat_pct: list[float | None]
    expected_max_pct: list[float] = Field(
        default_factory=list, description="random search: E[best of k], k = 1..N"
    )
    points: list[SampledPoint]


class SampledSummary(BaseModel):
    """A sampled study's report: per optimizer its searches, and the verdict between them."""

    kind: str
    num_samples: int
    repeats: int
    higher_is_better: bool = ACCURACY_HIGHER_IS_BETTER
    metric_label: str = Field(default="test accuracy", description="what the scores are of")
    unit: str = Field(default="%", description="the scores' display unit")
    test_method: str = METHOD
    optimizers: list[SampledOptimizer]
    comparisons: list[SampledComparison]
    verdict_head: str = Field(description="what was compared: the searches, their budget")
    verdict: str = Field(description="the head, then one sentence per pair")


def _score_pct(trial: TrialRecord, no_accuracy_pct: float, metric: str, scale: float) -> float:
    values = [v for v in trial.history.get(metric, []) if math.isfinite(v)]
    return scale * values[-1] if values else no_accuracy_pct


def _points(
    trials: Sequence[TrialRecord], no_accuracy_pct: float, metric: str, scale: float
) -> list[SampledPoint]:
    groups: dict[tuple[int, int], list[TrialRecord]] = {}
    for t in trials:
        groups.setdefault((t.repeat or 0, t.sample or 0), []).append(t)
    points = []
    for (repeat, sample), group in sorted(groups.items()):
        scores = [
            _score_pct(t, no_accuracy_pct, metric, scale)
            for t in group
            if t.status in COUNTED_TRIAL
        ]
        first = group[0]
        points.append(
            SampledPoint(
                repeat=repeat,
                sample=sample,
                lr=first.lr,
                warmup=first.warmup,
                warmup_steps=first.warmup_steps,
                score_pct=float(np.mean(scores)) if scores else None,
                n_seeds=len(scores),
            )
        )
    return points


def _matrix(points: Sequence[SampledPoint], repeats: int, n: int) -> FloatArray:
    """Scores as [repeat, sample], NaN where a point has no score."""
    m = np.full((repeats, n), np.nan)
    for p in points:
        if p.score_pct is not None and p.repeat < repeats and p.sample < n:
            m[p.repeat, p.sample] = p.score_pct
    return m


def _opt(values: FloatArray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def _optimizer(
    name: str,
    points: list[SampledPoint],
    *,
    kind: str,
    repeats: int,
    n: int,
    higher_is_better: bool,
) -> tuple[SampledOptimizer, FloatArray, FloatArray]:
    scores = _matrix(points, repeats, n)
    curves = running_best(scores, higher_is_better)  # [R, N]
    has = np.isfinite(scores).any(axis=1)
    with np.errstate(all="ignore"):
        best_by_repeat = np.where(has, curves[:, -1], np.nan)
        # area: mean over k of the curve; a curve still NaN at its start counts from its
        # first result (a failed first sample does not sink the whole area)
        area = np.where(
            has, np.nanmean(np.where(np.isfinite(curves), curves, np.nan), axis=1), np.nan
        )
        curve = curves[has]
        mean = curve.mean(axis=0) if curve.size else np.full(n, np.nan)
        low = curve.min(axis=0) if curve.size else np.full(n, np.nan)
        high = curve.max(axis=0) if curve.size else np.full(n, np.nan)
    scored = [p for p in points if p.score_pct is not None]
    i = best_index(np.array([p.score_pct for p in scored], dtype=np.float64), higher_is_better)
    best = scored[i] if i >= 0 else None
    emax: list[float] = []
    if kind == "random" and scored:
        s = sign(higher_is_better)
        pooled = expected_max([s * (p.score_pct or 0.0) for p in scored])
        emax = [s * v for v in pooled[:n]]
    summary = SampledOptimizer(
        optimizer=name,
        label=optimizer_label(name),
        repeats=int(has.sum()),
        samples=len(scored),
        best_pct=best.score_pct if best else None,
        best_lr=best.lr if best else None,
        best_warmup=best.warmup if best else None,
        best_warmup_steps=best.warmup_steps if best else None,
        area_pct=float(np.nanmean(area)) if np.isfinite(area).any() else None,
        curve_mean_pct=_opt(mean),
        curve_low_pct=_opt(low),
        curve_high_pct=_opt(high),
        best_by_repeat_pct=_opt(best_by_repeat),
        area_by_repeat_pct=_opt(area),
        expected_max_pct=emax,
        points=points,
    )
    return summary, best_by_repeat, area


def summarize_sampled(
    trials: Sequence[TrialRecord],
    *,
    kind: str,
    num_samples: int,
    repeats: int,
    higher_is_better: bool = ACCURACY_HIGHER_IS_BETTER,
    no_accuracy_pct: float = 0.0,
    metric: str = "test_acc",  # the history curve scored (its last finite value)
    display_scale: float = 100.0,  # record units -> display units (fraction -> percent)
    metric_label: str = "test accuracy",
    unit: str = "%",  # display unit
    draws: int = DEFAULT_DRAWS,
    rng_seed: int = 0,
    partial: bool = False,
) -> SampledSummary:
    """Summarise a sampled study's trials (see the module for what each number means)."""
    by_opt: dict[str, list[TrialRecord]] = {}
    for t in trials:
        by_opt.setdefault(t.optimizer, []).append(t)
    summaries: list[SampledOptimizer] = []
    stats: dict[str, tuple[FloatArray, FloatArray]] = {}
    for name in sorted(by_opt, key=optimizer_rank):
        summary, best, area = _optimizer(
            name,
            _points(by_opt[name], no_accuracy_pct, metric, display_scale),
            kind=kind,
            repeats=repeats,
            n=num_samples,
            higher_is_better=higher_is_better,
        )
        summaries.append(summary)
        stats[name] = (best, area)
    comparisons = [
        compare_searches(
            a,
            b,
            best_a=stats[a][0],
            best_b=stats[b][0],
            area_a=stats[a][1],
            area_b=stats[b][1],
            k=num_samples,
            higher_is_better=higher_is_better,
            unit=unit,
            draws=draws,
            rng_seed=rng_seed,
        )
        for a, b in itertools.combinations([s.optimizer for s in summaries], 2)
    ]
    head = _verdict_head(kind, num_samples, repeats, partial=partial)
    return SampledSummary(
        kind=kind,
        num_samples=num_samples,
        repeats=repeats,
        higher_is_better=higher_is_better,
        metric_label=metric_label,
        unit=unit,
        optimizers=summaries,
        comparisons=comparisons,
        verdict_head=head,
        verdict=" ".join([head, *(c.sentence for c in comparisons)])
        if comparisons
        else head + " One optimizer: nothing to compare.",
    )


def _verdict_head(kind: str, n: int, repeats: int, *, partial: bool) -> str:
    search = "TPE" if kind == "optuna" else "random search"
    times = f"{repeats} time{'s' if repeats != 1 else ''}"
    so_far = " (so far: the study is not done)" if partial else ""
    return f"Each optimizer had its own {search} of {n} configurations, repeated {times}{so_far}."
