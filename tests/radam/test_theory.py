"""The variance theory: Algorithm 2's quantities, Eq. 4 vs Eq. 6, and the Figure 9 simulation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from radam.theory import (
    approximation_gap,
    plot_adaptive_rate_simulation,
    plot_variance_curves,
    r_t,
    rho_inf,
    rho_t,
    simulate_adaptive_rate,
    var_psi_approx,
    var_psi_eq4_literal,
    var_psi_exact,
    variance_at,
    variance_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_rho_inf() -> None:
    assert rho_inf(0.999) == pytest.approx(1999.0)
    assert rho_inf(0.99) == pytest.approx(199.0)
    with pytest.raises(ValueError, match="beta2"):
        rho_inf(1.0)


@pytest.mark.parametrize("beta2", [0.9, 0.99, 0.999])
def test_rho_t_grows_to_rho_inf_and_never_exceeds_it(beta2: float) -> None:
    t = np.arange(1, 200_001)
    rho = rho_t(t, beta2=beta2)
    assert rho[0] == pytest.approx(1.0)  # one gradient: an SMA of length 1
    assert np.all(rho <= rho_inf(beta2) + 1e-9)
    assert np.all(np.diff(rho) > -1e-9)
    assert rho[-1] == pytest.approx(rho_inf(beta2), rel=1e-9)


def test_rho_t_matches_algorithm_2_literally() -> None:
    beta2 = 0.999
    for t in (1, 2, 5, 10, 100, 1000, 10_000):
        literal = 2 / (1 - beta2) - 1 - 2 * t * beta2**t / (1 - beta2**t)
        assert float(rho_t(t, beta2=beta2)) == pytest.approx(literal, rel=1e-9)


def test_r_t_is_undefined_until_tractable_then_tends_to_one() -> None:
    beta2 = 0.999
    t = np.arange(1, 100_001)
    r = r_t(t, beta2=beta2)
    tractable = rho_t(t, beta2=beta2) > 4
    assert np.all(np.isnan(r[~tractable]))
    assert not np.any(np.isnan(r[tractable]))
    assert int(t[tractable][0]) == 5  # rho_4 = 3.997..., rho_5 = 4.996...
    assert np.all(np.diff(r[tractable]) >= 0)  # saturates at 1.0 in double precision
    assert np.all(np.diff(r[4:10_000]) > 0)
    assert np.all(r[tractable] <= 1.0 + 1e-12)
    assert r[-1] == pytest.approx(1.0, abs=1e-9)
    # Algorithm 2, line by line, at t = 10.
    rho, r_inf = float(rho_t(10, beta2=beta2)), 2 / (1 - beta2) - 1
    literal = math.sqrt((rho - 4) * (rho - 2) * r_inf / ((r_inf - 4) * (r_inf - 2) * rho))
    assert float(r_t(10, beta2=beta2)) == pytest.approx(literal, rel=1e-12)


@pytest.mark.parametrize("rho", [4.5, 5.0, 10.0, 50.0, 200.0, 500.0])
def test_exact_variance_is_equation_4(rho: float) -> None:
    assert float(var_psi_exact(rho)) == pytest.approx(var_psi_eq4_literal(rho), rel=1e-9)
    assert float(var_psi_exact(rho, sigma=2.0)) == pytest.approx(
        var_psi_eq4_literal(rho, sigma=2.0), rel=1e-9
    )


def test_exact_variance_is_stable_where_equation_4_overflows() -> None:
    with pytest.raises(OverflowError):
        var_psi_eq4_literal(1999.0)
    rho = np.array([1999.0, 5000.0, 10_000.0])
    exact = var_psi_exact(rho)
    # Large-rho expansion: Var = 1/(2 rho) + O(1/rho^2).
    assert np.all(np.isfinite(exact))
    assert exact == pytest.approx(1 / (2 * rho), rel=2e-3)


@pytest.mark.parametrize("rho", [6.0, 12.0, 40.0])
def test_exact_variance_matches_sampling_the_distribution(rho: float) -> None:
    """psi = sqrt(x), x = rho / Y with Y ~ chi2(rho): Scale-inv-chi2(rho, 1)."""
    rng = np.random.default_rng(1)
    psi = np.sqrt(rho / rng.chisquare(rho, size=400_000))
    assert psi.var() == pytest.approx(float(var_psi_exact(rho)), rel=0.03)


def test_variance_falls_with_rho_theorem_1() -> None:
    rho = np.geomspace(4.01, 5000, 500)
    assert np.all(np.diff(var_psi_exact(rho)) < 0)


def test_undefined_regions_are_nan() -> None:
    assert np.isnan(var_psi_exact(2.0))
    assert np.isnan(var_psi_approx(4.0))
    assert np.isfinite(var_psi_exact(3.0))  # finite for rho > 2 although Eq. 6 is not


def test_approximation_error_shrinks_as_rho_grows() -> None:
    rho = np.geomspace(4.05, 2000, 400)
    gap = approximation_gap(rho)
    assert np.all(np.diff(gap) < 0)
    relative = gap / var_psi_exact(rho)
    assert np.all(np.diff(relative) < 0)
    assert relative[-1] < 2e-3  # at rho_inf for beta2 = 0.999
    # The first-order approximation overestimates: Eq. 6 > Eq. 4 everywhere here.
    assert np.all(var_psi_approx(rho) > var_psi_exact(rho))


def test_variance_curves_and_csv(tmp_path: Path) -> None:
    curves = variance_curves(rho_min=4.5, rho_max=1999.0, num=50)
    assert curves.rho[0] == pytest.approx(4.5) and curves.rho[-1] == pytest.approx(1999.0)
    assert curves.gap == pytest.approx(np.abs(curves.exact - curves.approx))
    path = curves.write_csv(tmp_path / "figure8.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "rho,exact,approx,gap"
    assert len(lines) == 51
    assert [float(v) for v in lines[1].split(",")] == pytest.approx(curves.rows()[0])
    assert variance_at([10.0]).rows()[0][1] == pytest.approx(0.0755459592, rel=1e-8)
    with pytest.raises(ValueError, match="rho_min"):
        variance_curves(rho_min=3.0)


def test_simulated_rectified_variance_is_flat_after_t10() -> None:
    """Figure 9's claim. Tolerance: after t = 10 the rectified variance stays within
    [0.6, 1.1] x C; Eq. 6 overestimates the variance at small rho (Eq. 4/Eq. 6 = 0.73 at
    rho = 10), so it starts below C, and sampling noise at 3,000 runs is a few percent.
    Meanwhile the plain variance falls by more than 20x over the same iterations."""
    sim = simulate_adaptive_rate(beta2=0.999, steps=600, samples=3000, seed=0)
    late = sim.t >= 10
    ratio = sim.var_rectified[late] / sim.target
    assert ratio.min() > 0.6
    assert ratio.max() < 1.1
    plain = sim.var_psi[late]
    assert plain[0] / plain[-1] > 20
    assert ratio.max() / ratio.min() < 1.5 < plain[0] / plain[-1]
    assert sim.var_psi[0] > 0.1  # t = 5: Var[psi] ~ 0.25, a thousand times C


def test_simulation_agrees_with_the_sma_model_early() -> None:
    """While the EMA's weights are near equal (t << 1/(1-beta2)), psi^2 is ~Scale-inv-chi2(rho_t):
    the simulated Var[psi_t] matches Eq. 4 at rho_t."""
    sim = simulate_adaptive_rate(beta2=0.999, steps=60, samples=40_000, seed=3)
    for t in (10, 20, 40, 60):
        row = sim.at(t)
        assert row["var_psi"] == pytest.approx(row["var_theory"], rel=0.08)
    assert sim.at(10)["var_rectified"] == pytest.approx(
        sim.at(10)["r_t"] ** 2 * sim.at(10)["var_psi"], rel=1e-12
    )


def test_simulation_is_reproducible_and_validates() -> None:
    a = simulate_adaptive_rate(steps=30, samples=500, seed=7)
    b = simulate_adaptive_rate(steps=30, samples=500, seed=7)
    c = simulate_adaptive_rate(steps=30, samples=500, seed=8)
    assert np.array_equal(a.var_psi, b.var_psi)
    assert not np.array_equal(a.var_psi, c.var_psi)
    assert a.t[0] == 5 and a.t[-1] == 30
    with pytest.raises(ValueError, match="t=3"):
        a.at(3)
    with pytest.raises(ValueError, match="samples"):
        simulate_adaptive_rate(samples=1)
    with pytest.raises(ValueError, match="t_start"):
        simulate_adaptive_rate(steps=3, t_start=5)


def test_figures_are_written(tmp_path: Path) -> None:
    curves = variance_curves(num=30)
    sim = simulate_adaptive_rate(steps=50, samples=500)
    for path in (
        plot_variance_curves(curves, tmp_path / "f8.png"),
        plot_adaptive_rate_simulation(sim, tmp_path / "sub" / "f9.png"),
    ):
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 10_000  # axes, three curves and a legend, not an empty canvas
    header = sim.write_csv(tmp_path / "f9.csv").read_text().splitlines()[0]
    assert header == "t,rho_t,r_t,var_psi,var_rectified,var_theory"


def test_the_optimizer_applies_this_r_t() -> None:
    """Cross-check with radam.optimizer.RAdam: with a constant gradient of 1 and eps = 0,
    m_hat = 1 and sqrt(v_t / (1 - beta2^t)) = 1, so each rectified step moves the parameter by
    exactly -lr * r_t. Checked from t = 6, past every threshold in use (paper 4, torch 5)."""
    torch = pytest.importorskip("torch")
    optimizer_module = pytest.importorskip("radam.optimizer")
    lr, beta2 = 0.5, 0.999
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = optimizer_module.RAdam([param], lr=lr, betas=(0.9, beta2), eps=0.0)
    moves = []
    for _ in range(400):
        before = float(param.item())
        param.grad = torch.ones(1, dtype=torch.float64)
        optimizer.step()
        moves.append(before - float(param.item()))
    t = np.arange(6, 401)
    assert np.array(moves[5:]) == pytest.approx(lr * r_t(t, beta2=beta2), rel=1e-9)
