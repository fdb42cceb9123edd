"""``robustness theory``: the paper's Figures 8 and 9, the theory behind rectification.

Writes ``figure8.png`` + ``figure8.csv`` (Eq. 4, Eq. 6 and their difference over rho) and
``figure9.png`` + ``figure9.csv`` (a Monte Carlo of Adam's adaptive rate, plain and
rectified), then prints a short table of both. Needs no data, no Ray and no MLflow.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from radam.theory import (
    DEFAULT_BETA2,
    plot_adaptive_rate_simulation,
    plot_variance_curves,
    rho_inf,
    simulate_adaptive_rate,
    table_rows,
    variance_at,
    variance_curves,
)
from studies.errors import SpecError

DEFAULT_OUT = Path(".robustness/theory")

# Rows of the printed table: rho for Figure 8, iteration t for Figure 9.
TABLE_RHO: tuple[float, ...] = (5, 10, 20, 50, 100, 500, 1000)
TABLE_T: tuple[int, ...] = (5, 10, 20, 50, 100, 500, 1000, 2000, 5000)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "theory",
        help="draw the paper's Figures 8 and 9 (variance of the adaptive rate)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--beta2", type=float, default=DEFAULT_BETA2, help="Adam's beta2")
    parser.add_argument("--steps", type=int, default=5000, help="iterations simulated")
    parser.add_argument(
        "--samples", type=int, default=10_000, help="independent runs in the Monte Carlo"
    )
    parser.add_argument("--seed", type=int, default=0, help="Monte Carlo seed")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    try:
        r_inf = rho_inf(args.beta2)
        started = time.perf_counter()
        curves = variance_curves(rho_max=max(r_inf, 10.0))
        sim = simulate_adaptive_rate(
            beta2=args.beta2, steps=args.steps, samples=args.samples, seed=args.seed
        )
        seconds = time.perf_counter() - started
    except ValueError as exc:  # out-of-range options, named by the theory module
        raise SpecError(str(exc)) from exc
    written = [
        curves.write_csv(out / "figure8.csv"),
        plot_variance_curves(curves, out / "figure8.png"),
        sim.write_csv(out / "figure9.csv"),
        plot_adaptive_rate_simulation(sim, out / "figure9.png"),
    ]
    print("Figure 8: Var[psi] for psi^2 ~ Scale-inv-chi2(rho, 1), exact (Eq. 4) vs Eq. 6")
    _print_table(
        ("rho", "exact", "approx", "|diff|"),
        variance_at(TABLE_RHO).rows(),
    )
    print()
    print(
        f"Figure 9: Monte Carlo, beta2={args.beta2:g}, rho_inf={r_inf:.1f}, "
        f"{args.samples:,} runs x {args.steps:,} steps (seed {args.seed}), "
        f"target C={sim.target:.3e}"
    )
    columns = sim.columns()
    _print_table(
        ("t", "rho_t", "r_t", "Var[psi]", "Var[r*psi]", "Eq.4@rho_t"),
        table_rows([t for t in TABLE_T if sim.t[0] <= t <= sim.t[-1]], columns, "t"),
    )
    print()
    print(f"computed in {seconds:.2f} s; wrote " + ", ".join(str(p) for p in written))
    return 0


def _print_table(header: Sequence[str], rows: list[list[float]]) -> None:
    print("  ".join(f"{h:>11}" for h in header))
    for row in rows:
        print("  ".join(_cell(v) for v in row))


def _cell(value: float) -> str:
    if value != value:  # NaN: r_t is undefined where rho_t <= 4
        return f"{'-':>11}"
    if value == int(value) and abs(value) < 1e6:
        return f"{int(value):>11d}"
    if 0.01 <= abs(value) < 1e4:
        return f"{value:>11.4f}"
    return f"{value:>11.3e}"
