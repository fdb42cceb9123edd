"""Pairs of optimizers: which cells to match, the test (``studies.analysis.verdict``), the
sentences.

Cells are matched so that the test exchanges seeds between runs that differ only in the
optimizer:

- both optimizers ran the same warmup settings (Figure 6: none): every shared cell, matched by
  learning rate and warmup; the regret is over the whole grid ("the learning rate and warmup"
  when the grid varies it);
- one ran a single warmup setting and the other several (Figure 7: RAdam without warmup,
  AdamW with linear warmup of 100..1000 steps): one comparison per setting of the other,
  cells matched by learning rate ("RAdam without warmup against AdamW with linear warmup
  (100 steps)");
- otherwise, the cells both ran, and the sentence says how many.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from studies.analysis.labels import (
    CellKey,
    optimizer_label,
    optimizer_rank,
    warmup_label,
    warmup_rank,
)
from studies.analysis.verdict import (
    ALPHA,
    METHOD,
    RegretTest,
    describe,
    no_test_reason,
    regret_test,
)

FloatArray = npt.NDArray[np.float64]
Setting = tuple[str, int]  # warmup, warmup_steps


class Comparison(BaseModel):
    """Optimizer ``a`` against ``b``: difference in mean regret (a - b), negative favours a."""

    a: str
    b: str
    a_warmup: str | None = Field(
        default=None, description="a's warmup setting, when compared one setting at a time"
    )
    b_warmup: str | None = None
    cells: int = Field(description="configurations both ran, where the test exchanges seeds")
    seeds_min: int = Field(description="fewest counted seeds of either optimizer in a cell")
    seeds_max: int
    regret_a_pct: float = Field(description="a's mean regret over the matched cells")
    regret_b_pct: float
    diff_pct: float
    diff_ci_pct: tuple[float, float] | None = Field(
        description="95% interval: the permutation test inverted; None when no test is possible"
    )
    p_value: float | None = Field(description="two-sided; None when no test is possible")
    min_p_value: float = Field(description="the smallest p-value this design can reach")
    seeds_needed: int | None = Field(description="seeds per cell that would make a test possible")
    method: str = METHOD
    exact: bool = Field(description="every relabelling enumerated (else random draws)")
    relabellings: int
    less_sensitive: str | None = Field(description="the optimizer the test favours, if any")
    sentence: str


def _settings(keys: Sequence[CellKey], optimizer: str) -> list[Setting]:
    found = {(k[2], k[3]) for k in keys if k[0] == optimizer}
    return sorted(found, key=lambda s: warmup_rank(*s))


def _with_setting(label: str, setting: Setting) -> str:
    words = warmup_label(*setting)
    return f"{label} without warmup" if words == "no warmup" else f"{label} with {words}"


def compare_pairs(
    keys: Sequence[CellKey],
    seed_finals: Sequence[FloatArray],
    *,
    draws: int,
    rng_seed: int,
    unit: str = "points",
    decimals: int = 1,
) -> list[Comparison]:
    """Every pair once, RAdam's first; ``seed_finals[i]``: final values of cell ``keys[i]``,
    oriented so that higher is better (a lower-is-better metric's negated), in the metric's
    display unit; the sentences give regrets in ``unit`` with ``decimals`` decimals."""
    live = {k: f for k, f in zip(keys, seed_finals, strict=True) if len(f)}
    names = sorted({k[0] for k in live}, key=optimizer_rank)
    out: list[Comparison] = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for cells_unit in _units(list(live), a, b):
                out.append(_compare(a, b, cells_unit, live, draws, rng_seed, (unit, decimals)))
    return out


# (a's setting label or None, b's, [(a's cell, b's cell)], whole grid?)
Unit = tuple[Setting | None, Setting | None, list[tuple[CellKey, CellKey]], bool]


def _units(keys: Sequence[CellKey], a: str, b: str) -> list[Unit]:
    sa, sb = _settings(keys, a), _settings(keys, b)
    cells_a = {k[1:]: k for k in keys if k[0] == a}
    cells_b = {k[1:]: k for k in keys if k[0] == b}
    if sa == sb or (len(sa) > 1 and len(sb) > 1):
        shared = sorted(set(cells_a) & set(cells_b), key=lambda r: (warmup_rank(r[1], r[2]), r[0]))
        whole = len(shared) == len(cells_a) == len(cells_b)
        return [(None, None, [(cells_a[r], cells_b[r]) for r in shared], whole)]
    # One of them ran a single setting: against each setting of the other, matched by lr.
    units: list[Unit] = []
    single_is_a = len(sa) == 1
    one, many = (sa[0], sb) if single_is_a else (sb[0], sa)
    own_one = cells_a if single_is_a else cells_b
    own_many = cells_b if single_is_a else cells_a
    for setting in many:
        lrs = sorted({r[0] for r in own_one} & {r[0] for r in own_many if r[1:] == setting})
        pairs = [(own_one[(lr, *one)], own_many[(lr, *setting)]) for lr in lrs]
        if not single_is_a:
            pairs = [(y, x) for x, y in pairs]
        whole = len(lrs) == len(own_one) == sum(1 for r in own_many if r[1:] == setting)
        units.append((one, setting, pairs, whole) if single_is_a else (setting, one, pairs, whole))
    return units


def _compare(
    a: str,
    b: str,
    unit: Unit,
    live: Mapping[CellKey, FloatArray],
    draws: int,
    rng_seed: int,
    numbers: tuple[str, int] = ("points", 1),  # the regrets' unit and decimals
) -> Comparison:
    set_a, set_b, pairs, whole = unit
    points, d = numbers
    la, lb = optimizer_label(a), optimizer_label(b)
    if set_a is not None and set_b is not None:
        la, lb = _with_setting(la, set_a), _with_setting(lb, set_b)
    test: RegretTest | None = None
    if pairs:
        test = regret_test(
            [live[x] for x, _ in pairs], [live[y] for _, y in pairs], draws=draws, rng_seed=rng_seed
        )
    # What the matched cells vary: a per-setting comparison, or two no-warmup grids in a
    # warmup study, is about the learning rate alone.
    varied = any(len({(pair[side][2], pair[side][3]) for pair in pairs}) > 1 for side in (0, 1))
    what = "the learning rate and warmup" if varied else "the learning rate"
    where = "on this grid" if whole else f"on the {len(pairs)} configurations both ran"
    winner: str | None = None
    if test is None:
        own_a, own_b = (_own_regret(live, a, set_a), _own_regret(live, b, set_b))
        sentence = (
            f"Cannot tell whether {la} or {lb} is less sensitive to {what}: mean regret "
            f"{own_a:.{d}f} against {own_b:.{d}f} {points} over their own grids, but they share no "
            "configuration, so no seed-exchange test is possible."
        )
        return Comparison(
            a=a,
            b=b,
            a_warmup=warmup_label(*set_a) if set_a else None,
            b_warmup=warmup_label(*set_b) if set_b else None,
            cells=0,
            seeds_min=0,
            seeds_max=0,
            regret_a_pct=own_a,
            regret_b_pct=own_b,
            diff_pct=own_a - own_b,
            diff_ci_pct=None,
            p_value=None,
            min_p_value=1.0,
            seeds_needed=None,
            exact=True,
            relabellings=0,
            less_sensitive=None,
            sentence=sentence,
        )
    regrets = f"mean regret {test.regret_a:.{d}f} against {test.regret_b:.{d}f} {points}"
    if not test.possible:
        sentence = (
            f"Cannot tell whether {la} or {lb} is less sensitive to {what} {where}: {regrets}, "
            f"but {no_test_reason(test)}."
        )
    elif test.rejects and test.ci is not None:
        winner = a if test.diff < 0 else b
        (better, worse) = (la, lb) if winner == a else (lb, la)
        low, high = sorted(abs(x) for x in test.ci)
        r_better, r_worse = sorted((test.regret_a, test.regret_b))
        sentence = (
            f"{better} is less sensitive to {what} than {worse} {where}: mean regret "
            f"{r_better:.{d}f} against {r_worse:.{d}f} {points}, difference {abs(test.diff):.{d}f} "
            f"[{1 - ALPHA:.0%} interval {low:.{d}f}, {high:.{d}f}] ({describe(test)})."
        )
    else:
        ci = test.ci or (test.diff, test.diff)
        sentence = (
            f"Cannot tell {la} and {lb} apart on sensitivity to {what} {where}: {regrets}; "
            f"the difference {test.diff:+.{d}f} [{1 - ALPHA:.0%} interval {ci[0]:.{d}f}, "
            f"{ci[1]:.{d}f}] includes 0 ({describe(test)})."
        )
    return Comparison(
        a=a,
        b=b,
        a_warmup=warmup_label(*set_a) if set_a else None,
        b_warmup=warmup_label(*set_b) if set_b else None,
        cells=test.cells,
        seeds_min=test.seeds_min,
        seeds_max=test.seeds_max,
        regret_a_pct=test.regret_a,
        regret_b_pct=test.regret_b,
        diff_pct=test.diff,
        diff_ci_pct=test.ci,
        p_value=test.p_value,
        min_p_value=test.min_p,
        seeds_needed=test.seeds_needed,
        exact=test.exact,
        relabellings=test.relabellings,
        less_sensitive=winner,
        sentence=sentence,
    )


def _own_regret(
    live: Mapping[CellKey, FloatArray], optimizer: str, setting: Setting | None
) -> float:
    """Mean regret over an optimizer's own cells (of one warmup setting, when given)."""
    means = [
        float(f.mean())
        for k, f in live.items()
        if k[0] == optimizer and (setting is None or (k[2], k[3]) == setting)
    ]
    return max(means) - sum(means) / len(means)


def verdict_text(
    comparisons: Sequence[Comparison],
    with_counted: Sequence[str],
    *,
    done: int,
    total: int,
    partial: bool,
) -> str:
    """The study's verdict: every comparison's sentence ("So far ..." while trials remain)."""
    if not with_counted:
        return f"No finished trials yet ({done} of {total} done)."
    if not comparisons:
        text = f"Nothing to compare: only {', '.join(with_counted)} has finished trials."
    else:
        text = " ".join(c.sentence for c in comparisons)
    if partial:
        text = f"So far ({done} of {total} trials done): {text}"
    return text
