"""Why rectification works: the variance of Adam's adaptive learning rate (Liu et al. 2019).

What this module claims, and the evidence (tests/radam/test_theory.py):

- ``rho_inf``, ``rho_t`` and ``r_t`` are Algorithm 2's quantities:
  ``rho_inf = 2/(1-beta2) - 1``, ``rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)`` (the length
  of the simple moving average with the same centre of mass as Adam's EMA) and
  ``r_t = sqrt((rho_t-4)(rho_t-2)rho_inf / ((rho_inf-4)(rho_inf-2)rho_t))``, defined only
  where the variance is tractable (``rho_t > 4``; NaN elsewhere). Tested: ``rho_t <= rho_inf``,
  ``rho_t`` grows to ``rho_inf`` and ``r_t`` to 1.
- ``var_psi_exact`` is Eq. 4, the exact variance of ``psi = sqrt(x)`` for
  ``x ~ Scale-inv-chi2(rho, 1/sigma^2)``. Eq. 4 as written overflows in double precision
  (``2^(2 rho - 5)`` for rho above 514, beta functions that underflow); by Legendre's
  duplication formula it equals ``tau^2 rho/(rho-2) * (1 - (rho-2)/2 * (G((rho-1)/2)/G(rho/2))^2)``,
  which is computed here through log-gamma and ``expm1``, so the cancellation of two numbers
  near 1 costs no precision. Tested against Eq. 4 evaluated literally (where it does not
  overflow) and against sampling the distribution.
- ``var_psi_approx`` is Eq. 6, the first-order approximation ``rho / (2 (rho-2)(rho-4) sigma^2)``
  that RAdam uses; ``approximation_gap`` is their absolute difference (Figure 8), which
  shrinks as rho grows (tested).
- ``simulate_adaptive_rate`` is Figure 9: a Monte Carlo run of Adam's EMA on gradients
  ``g ~ N(0, sigma^2)``; ``Var[psi_t]`` is huge early and falls ~1/t, while
  ``Var[r_t psi_t]`` stays near the constant ``C = var_psi_approx(rho_inf)``. Tested: after
  t = 10 the rectified variance stays within [0.6, 1.1] x C (the first-order approximation
  overestimates the variance at small rho, so it sits below C at first), while the plain one
  falls by more than 20x over the same iterations.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global state).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]

#: Adam's default beta2, the paper's setting for every figure.
DEFAULT_BETA2 = 0.999


def _check_beta2(beta2: float) -> None:
    if not 0.0 < beta2 < 1.0:
        raise ValueError(f"beta2 must be in (0, 1), got {beta2}")


def rho_inf(beta2: float) -> float:
    """Maximum length of the approximated simple moving average: ``2 / (1 - beta2) - 1``."""
    _check_beta2(beta2)
    return 2.0 / (1.0 - beta2) - 1.0


def rho_t(t: ArrayLike, *, beta2: float) -> Array:
    """Length of the SMA at iteration ``t`` (from 1): ``rho_inf - 2 t beta2^t / (1 - beta2^t)``."""
    steps = np.asarray(t, dtype=np.float64)
    if np.any(steps < 1):
        raise ValueError("t must be >= 1 (iterations count from 1)")
    beta2_t = np.power(beta2, steps)
    # -expm1(t log beta2) is 1 - beta2^t without cancellation when beta2^t is close to 1.
    one_minus = -np.expm1(steps * math.log(beta2))
    result: Array = rho_inf(beta2) - 2.0 * steps * beta2_t / one_minus
    return result


def r_t(t: ArrayLike, *, beta2: float) -> Array:
    """The variance rectification term; NaN where ``rho_t <= 4`` (variance not tractable)."""
    rho = rho_t(t, beta2=beta2)
    r_inf = rho_inf(beta2)
    tractable = rho > 4.0
    safe = np.where(tractable, rho, 5.0)  # any tractable value; masked out below
    ratio = (safe - 4.0) * (safe - 2.0) * r_inf / ((r_inf - 4.0) * (r_inf - 2.0) * safe)
    result: Array = np.where(tractable, np.sqrt(ratio), np.nan)
    return result


def _lgamma(x: Array) -> Array:
    # math.lgamma per element: exact to double precision, and no dependency on scipy.
    return np.array([math.lgamma(v) for v in x.ravel()], dtype=np.float64).reshape(x.shape)


def var_psi_exact(rho: ArrayLike, *, sigma: float = 1.0) -> Array:
    """Eq. 4: ``Var[sqrt(x)]`` for ``x ~ Scale-inv-chi2(rho, 1/sigma^2)``; NaN where ``rho <= 2``.

    Finite for every rho > 2 (the paper states it for rho > 4, where Eq. 6 also exists).
    Relative error below 1e-8 up to rho ~ 1e4 (log-gamma's absolute error grows with rho).
    """
    rho_arr = np.atleast_1d(np.asarray(rho, dtype=np.float64))
    defined = rho_arr > 2.0
    safe = np.where(defined, rho_arr, 3.0)
    tau2 = 1.0 / sigma**2
    # E[sqrt x]^2 / E[x] = (rho-2)/2 * (G((rho-1)/2) / G(rho/2))^2 = exp(log_ratio) < 1
    log_ratio = (
        np.log(safe - 2.0)
        - math.log(2.0)
        + 2.0 * (_lgamma((safe - 1.0) / 2.0) - _lgamma(safe / 2.0))
    )
    variance = -tau2 * safe / (safe - 2.0) * np.expm1(log_ratio)
    result: Array = np.where(defined, variance, np.nan).reshape(np.shape(rho))
    return result


def var_psi_eq4_literal(rho: float, *, sigma: float = 1.0) -> float:
    """Eq. 4 exactly as printed (Beta function and 2^(2 rho - 5)); overflows for rho > 514.

    Kept to show that ``var_psi_exact`` is Eq. 4, and why it is not computed this way.
    """
    half = (rho - 1.0) / 2.0
    beta = math.exp(2.0 * math.lgamma(half) - math.lgamma(2.0 * half))
    power = math.pow(2.0, 2.0 * rho - 5.0)  # OverflowError from rho ~ 515 on
    return (rho / (rho - 2.0) - rho * power / math.pi * beta**2) / sigma**2


def var_psi_approx(rho: ArrayLike, *, sigma: float = 1.0) -> Array:
    """Eq. 6: ``rho / (2 (rho-2)(rho-4) sigma^2)``, the first-order approximation; NaN for rho <= 4."""
    rho_arr = np.asarray(rho, dtype=np.float64)
    defined = rho_arr > 4.0
    safe = np.where(defined, rho_arr, 5.0)
    result: Array = np.where(defined, safe / (2.0 * (safe - 2.0) * (safe - 4.0) * sigma**2), np.nan)
    return result


def approximation_gap(rho: ArrayLike, *, sigma: float = 1.0) -> Array:
    """``|Eq. 4 - Eq. 6|``, the third curve of Figure 8."""
    result: Array = np.abs(var_psi_exact(rho, sigma=sigma) - var_psi_approx(rho, sigma=sigma))
    return result


def _write_columns(path: Path, columns: dict[str, Array]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(columns))
        for row in zip(*columns.values(), strict=True):
            writer.writerow([repr(float(v)) for v in row])
    return path


@dataclass(frozen=True)
class VarianceCurves:
    """Figure 8's data: Eq. 4, Eq. 6 and their difference over rho (sigma = 1)."""

    rho: Array
    exact: Array
    approx: Array
    gap: Array

    def columns(self) -> dict[str, Array]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def rows(self) -> list[list[float]]:
        return [[float(v) for v in row] for row in zip(*self.columns().values(), strict=True)]

    def write_csv(self, path: Path) -> Path:
        return _write_columns(path, self.columns())


def variance_curves(
    *,
    rho_min: float = 4.1,  # just above 4, where Eq. 6 diverges
    rho_max: float = 2000.0,  # ~ rho_inf for beta2 = 0.999
    num: int = 400,  # points, log-spaced
) -> VarianceCurves:
    """Evaluate Eq. 4 and Eq. 6 on log-spaced rho in [rho_min, rho_max] (Figure 8)."""
    if not 4.0 < rho_min < rho_max:
        raise ValueError(f"rho_min must satisfy 4 < rho_min < rho_max, got {rho_min}, {rho_max}")
    if num < 2:
        raise ValueError(f"num must be >= 2, got {num}")
    return variance_at(np.geomspace(rho_min, rho_max, num))


def variance_at(rho: ArrayLike, *, sigma: float = 1.0) -> VarianceCurves:
    """Eq. 4, Eq. 6 and their difference at the given rho values (NaN where undefined)."""
    rho_arr = np.atleast_1d(np.asarray(rho, dtype=np.float64))
    exact = var_psi_exact(rho_arr, sigma=sigma)
    approx = var_psi_approx(rho_arr, sigma=sigma)
    return VarianceCurves(rho=rho_arr, exact=exact, approx=approx, gap=np.abs(exact - approx))


@dataclass(frozen=True)
class AdaptiveRateSimulation:
    """Figure 9's data, one row per iteration t >= t_start.

    ``var_psi`` and ``var_rectified`` are Monte Carlo estimates over ``samples`` independent
    runs; ``var_theory`` is Eq. 4 at rho_t (the SMA model's prediction for ``var_psi``);
    ``target`` is C = Eq. 6 at rho_inf, the constant RAdam aims ``var_rectified`` at.
    """

    t: Array
    rho_t: Array
    r_t: Array
    var_psi: Array
    var_rectified: Array
    var_theory: Array
    beta2: float
    sigma: float
    samples: int
    seed: int

    @property
    def target(self) -> float:
        return float(var_psi_approx(rho_inf(self.beta2), sigma=self.sigma))

    def columns(self) -> dict[str, Array]:
        return {
            "t": self.t,
            "rho_t": self.rho_t,
            "r_t": self.r_t,
            "var_psi": self.var_psi,
            "var_rectified": self.var_rectified,
            "var_theory": self.var_theory,
        }

    def write_csv(self, path: Path) -> Path:
        return _write_columns(path, self.columns())

    def at(self, t: int) -> dict[str, float]:
        """The row of iteration ``t``."""
        index = int(np.searchsorted(self.t, t))
        if index >= len(self.t) or self.t[index] != t:
            raise ValueError(f"t={t} is not simulated (t in [{self.t[0]:.0f}, {self.t[-1]:.0f}])")
        return {name: float(column[index]) for name, column in self.columns().items()}


def simulate_adaptive_rate(
    *,
    beta2: float = DEFAULT_BETA2,
    sigma: float = 1.0,  # gradient standard deviation
    steps: int = 5000,  # iterations simulated
    samples: int = 10_000,  # independent runs; the variance at each t is taken across them
    t_start: int = 5,  # first iteration recorded; the paper's Figure 9 starts at 5
    seed: int = 0,
) -> AdaptiveRateSimulation:
    """Run Adam's second-moment EMA on ``g ~ N(0, sigma^2)`` and record the variance of
    ``psi_t = sqrt((1 - beta2^t) / v_t)`` and of ``r_t psi_t`` across ``samples`` runs.

    Vectorised over the runs, one numpy pass per iteration: O(samples) memory. Before
    ``t_start`` the variance is infinite or nearly so (t = 1: ``psi = 1/|g|``), so not recorded.
    """
    _check_beta2(beta2)
    if not sigma > 0.0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if samples < 2:
        raise ValueError(f"samples must be >= 2, got {samples}")
    if not 1 <= t_start <= steps:
        raise ValueError(f"t_start must be in [1, steps={steps}], got {t_start}")
    rng = np.random.default_rng(seed)
    t_axis = np.arange(t_start, steps + 1, dtype=np.float64)
    rectification = r_t(t_axis, beta2=beta2)
    var_psi = np.empty_like(t_axis)
    v = np.zeros(samples)
    g = np.empty(samples)
    for t in range(1, steps + 1):
        rng.standard_normal(out=g)
        g *= sigma
        v *= beta2
        v += (1.0 - beta2) * g * g
        if t >= t_start:
            psi = np.sqrt(-math.expm1(t * math.log(beta2)) / v)
            var_psi[t - t_start] = psi.var(ddof=1)
    # r_t is deterministic, so Var[r_t psi_t] = r_t^2 Var[psi_t] exactly (NaN where rho_t <= 4).
    var_rectified = rectification**2 * var_psi
    rho = rho_t(t_axis, beta2=beta2)
    return AdaptiveRateSimulation(
        t=t_axis,
        rho_t=rho,
        r_t=rectification,
        var_psi=var_psi,
        var_rectified=var_rectified,
        var_theory=var_psi_exact(rho, sigma=sigma),
        beta2=beta2,
        sigma=sigma,
        samples=samples,
        seed=seed,
    )


def _new_figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.6), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def plot_variance_curves(curves: VarianceCurves, path: Path) -> Path:
    """Figure 8: Eq. 4, Eq. 6 and their absolute difference against rho, log-log."""
    figure, axes = _new_figure()
    axes.plot(curves.rho, curves.exact, label=r"Eq. 4: exact $\mathrm{Var}[\psi]$", linewidth=2.2)
    axes.plot(curves.rho, curves.approx, "--", label="Eq. 6: first-order approximation")
    axes.plot(curves.rho, curves.gap, ":", label=r"$|$Eq. 4 $-$ Eq. 6$|$", linewidth=2.0)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(r"$\rho$ (degrees of freedom of the scaled inverse $\chi^2$)")
    axes.set_ylabel(r"variance ($\sigma = 1$), log scale")
    axes.set_title(r"Figure 8: $\mathrm{Var}[\psi]$ and its first-order approximation")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="lower left")
    return _save(figure, path)


def plot_adaptive_rate_simulation(sim: AdaptiveRateSimulation, path: Path) -> Path:
    """Figure 9: simulated Var[psi_t] and Var[r_t psi_t] against iteration t, log-log."""
    figure, axes = _new_figure()
    axes.plot(sim.t, sim.var_psi, label=r"$\mathrm{Var}[\psi_t]$ (Adam, simulated)", linewidth=2.2)
    axes.plot(
        sim.t,
        sim.var_rectified,
        label=r"$\mathrm{Var}[r_t\,\psi_t]$ (RAdam, simulated)",
        linewidth=2.2,
    )
    axes.plot(
        sim.t,
        sim.var_theory,
        "--",
        color="grey",
        label=r"Eq. 4 at $\rho_t$ (SMA model)",
        linewidth=1.2,
    )
    axes.axhline(
        sim.target,
        color="black",
        linestyle=":",
        label=r"$C$ = Eq. 6 at $\rho_\infty$ (RAdam's target)",
    )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(f"iteration t (from {int(sim.t[0])})")
    axes.set_ylabel("variance across runs, log scale")
    axes.set_title(
        "Figure 9: simulated variance of the adaptive rate\n"
        rf"$g \sim \mathcal{{N}}(0, {sim.sigma:g}^2)$, $\beta_2 = {sim.beta2:g}$, "
        f"{sim.samples:,} runs"
    )
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="upper right")
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def table_rows(values: Sequence[float], columns: dict[str, Array], key: str) -> list[list[float]]:
    """Rows of ``columns`` at the entries where ``columns[key]`` is nearest each value."""
    axis = columns[key]
    rows = []
    for value in values:
        index = int(np.argmin(np.abs(axis - value)))
        rows.append([float(column[index]) for column in columns.values()])
    return rows
