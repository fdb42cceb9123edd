"""``robustness theory``: writes Figures 8 and 9 with their CSVs and prints the table."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

from studies.cli import build_parser, main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL = ["--steps", "120", "--samples", "1500", "--seed", "2"]


def read_csv(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def test_theory_writes_figures_csvs_and_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "theory"
    assert main(["theory", "--out", str(out), *SMALL]) == 0

    for name in ("figure8.png", "figure9.png"):
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE)
    figure8 = read_csv(out / "figure8.csv")
    assert list(figure8[0]) == ["rho", "exact", "approx", "gap"]
    assert figure8[-1]["rho"] == pytest.approx(1999.0)  # rho_inf for beta2 = 0.999
    assert all(math.isclose(r["gap"], abs(r["exact"] - r["approx"])) for r in figure8)

    figure9 = read_csv(out / "figure9.csv")
    assert [r["t"] for r in figure9] == list(range(5, 121))
    assert list(figure9[0]) == ["t", "rho_t", "r_t", "var_psi", "var_rectified", "var_theory"]
    assert figure9[0]["var_psi"] > 100 * figure9[0]["var_rectified"]  # t = 5

    printed = capsys.readouterr().out
    assert "Figure 8" in printed and "Figure 9" in printed
    assert "beta2=0.999, rho_inf=1999.0, 1,500 runs x 120 steps (seed 2)" in printed
    figure9_table = printed.split("Figure 9")[1].splitlines()
    row_t10 = next(line for line in figure9_table if line.split()[:1] == ["10"])
    # t = 10 row of Figure 9's table: t, rho_t, r_t, ... (rho_10 = 9.9835, r_10 = 0.0490)
    assert row_t10.split()[1:3] == ["9.9835", "0.0490"]
    assert str(out / "figure9.png") in printed


def test_theory_defaults() -> None:
    args = build_parser().parse_args(["theory"])
    assert args.out == Path(".robustness/theory")
    assert (args.beta2, args.steps, args.samples, args.seed) == (0.999, 5000, 10_000, 0)


def test_theory_reports_a_bad_option_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["theory", "--out", str(tmp_path), "--beta2", "1.5"]) == 2
    assert "beta2" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_theory_runs_as_a_process(tmp_path: Path) -> None:
    """The console entry point (``python -m studies``, what ``robustness`` runs)."""
    result = subprocess.run(
        [sys.executable, "-m", "studies", "theory", "--out", str(tmp_path), *SMALL],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "figure8.csv",
        "figure8.png",
        "figure9.csv",
        "figure9.png",
    ]
