"""What a researcher sees when they open a study's MLflow links (``service.links``) in a
browser: headless Chromium against a real MLflow UI, asserted on the rendered DOM, with a
screenshot of each page for a person to look at.

Shared by the embedded store's test (SQLite, ``tests/service/test_api.py``) and the stack's
(an ``mlflow server`` on Postgres, ``tests/deploy/test_mlflow_links.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from browser import dump_dom, page_text, screenshot

BUDGET_MS = 30_000  # virtual time for the UI to load its bundle, the runs and the charts
# what each page shows once its data has arrived (a busy machine or a cold server can take
# longer than one budget: the page is loaded again, with a longer budget)
RENDERED = {
    "compare": 'data-testid="experiment-view-compare-runs-card"',
    "trials": "matching runs",
    "run": "Parameters (",
}
GENAI_LAYOUT = ("Evaluation runs", "Token Usage", "Tokens per Trace")  # the "GenAI" workflow
ML_LAYOUT = "Model registry"  # the model-training side bar's last entry


@dataclass(frozen=True)
class Trial:
    name: str  # its MLflow run name (the trial id)
    test_acc: float  # its last epoch's, the value MLflow sorts and plots by


@dataclass(frozen=True)
class Seen:
    compare: str  # the text of each page
    trials: str
    run: str
    shots: dict[str, Path]


def open_study_links(
    *,
    compare: str,
    trials: str,
    run: str,
    shots: Path,
) -> Seen:
    """Each link's DOM and a screenshot of it (a fresh browser profile each time: nothing
    the UI remembers between visits, as for a researcher's first click)."""
    urls = {"compare": compare, "trials": trials, "run": run}
    doms = {label: _rendered(url, RENDERED[label]) for label, url in urls.items()}
    files = {
        label: screenshot(url, shots / f"mlflow-{label}.png", budget_ms=BUDGET_MS)
        for label, url in urls.items()
    }
    card = r'<[^>]*data-testid="experiment-view-compare-runs-card"[^>]*>'
    compare_cards = re.split(card, doms["compare"])  # the page before them, then each card
    return Seen(
        compare=" | ".join(page_text(card) for card in compare_cards),
        trials=page_text(doms["trials"]),
        run=page_text(doms["run"]),
        shots=files,
    )


def _rendered(url: str, marker: str, *, attempts: int = 3) -> str:
    dom = ""
    for attempt in range(1, attempts + 1):
        dom = dump_dom(url, budget_ms=BUDGET_MS * attempt)
        if marker in dom:
            break
    return dom


def assert_researcher_view(
    seen: Seen,
    *,
    study_name: str,
    experiment: str,
    trials: Sequence[Trial],
    axes: Sequence[str],
) -> None:
    """The compare link: charts of the study's trials, the first a parallel-coordinates plot
    of the grid's axes against test_acc (not train_loss or lr); the trials link: every trial
    as its own row, best test accuracy first (not one folded parent run); the study run link:
    the model-training layout (not "Evaluation runs"). No page in the GenAI layout."""
    for label, text in (("compare", seen.compare), ("trials", seen.trials), ("run", seen.run)):
        shown = [marker for marker in GENAI_LAYOUT if marker in text]
        assert not shown, f"{label}: the GenAI layout ({shown}); see {seen.shots[label]}"
        assert ML_LAYOUT in text, f"{label}: not the model-training layout; {seen.shots[label]}"

    names = [t.name for t in trials]
    # compare: the cards' texts, split by card; the first card is the parallel coordinates
    page, first, *others = seen.compare.split(" | ")
    assert first.strip().startswith("Parallel Coordinates"), (first[:300], seen.shots["compare"])
    axis_titles = [word for word in first.split() if word in {*axes, "test_acc", "train_loss"}]
    assert axis_titles == [*axes, "test_acc"], (axis_titles, first[:500], seen.shots["compare"])
    assert "Showing all runs" in first
    assert others and others[0].split()[0] == "test_acc", others[0][:200] if others else None
    assert all(name in page for name in names), (names, page[:2000])
    assert f"{len(names)} matching runs" in page

    # trials: one row per trial (MLflow writes "Hide run #<colour> <name>" in each row)
    rows = re.findall(r"Hide run #[0-9a-f]{6} (\S+)", seen.trials)
    assert sorted(rows) == sorted(names), (rows, seen.trials[:2000], seen.shots["trials"])
    assert study_name not in rows
    assert f"{len(names)} matching runs" in seen.trials
    best = max(t.test_acc for t in trials)
    assert {t.name: t.test_acc for t in trials}[rows[0]] == best, (rows, seen.shots["trials"])
    headers = seen.trials.split("Run Name", 1)[1].split("Hide run", 1)[0].split()
    assert {*axes, "test_acc"} <= set(headers), (headers, seen.shots["trials"])

    # the study run: its page, its trials listed as child runs
    assert f"{experiment} Runs {study_name}" in seen.run, (seen.run[:600], seen.shots["run"])
    assert any(name in seen.run for name in names)
