"""A study's spec is parsed once per process boundary (issue 10, "validate once"): the
driver of a study created elsewhere (``robustness run --study-id``: the service's Ray job, a
resubmission) parses it from the record once and hands the ``StudySpec`` on; a process that
receives it as JSON (Tune's workers and callbacks) parses each distinct text once."""

from __future__ import annotations

from pathlib import Path

import pytest

from studies import presets, tracking
from studies.cli import main
from studies.spec import StudySpec

TINY = {
    "name": "parsed-once",
    "dataset": "digits",
    "model": "mlp",
    "optimizers": ["radam"],
    "learning_rates": [0.01],
    "epochs": 1,
    "batch_size": 64,
    "train_subset": 300,
}


def test_the_driver_of_a_recorded_study_parses_its_spec_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec_parses: list[str]
) -> None:
    monkeypatch.setenv("ROBUSTNESS_HOME", str(tmp_path / "home"))
    for name in ("ROBUSTNESS_DATA_DIR", "MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # recorded as the service and `robustness run` record a study: with its grid size
    spec = StudySpec.parse(TINY)
    record = tracking.store_for(uri).create_study(spec.to_dict(), num_trials=spec.num_trials)
    assert presets.PRESETS  # the presets, parsed when their module is first imported
    spec_parses.clear()

    # what the service's Ray job runs, in this process (its own local Ray)
    assert main(["run", "--study-id", record.study_id, "--mlflow-uri", uri]) == 0

    assert tracking.store_for(uri).get_study(record.study_id).status == "succeeded"
    # the dataset check, the runner, the callback and the summary share one StudySpec
    assert spec_parses == ["model_validate"], spec_parses


def test_a_spec_received_as_json_is_parsed_once_per_text(spec_parses: list[str]) -> None:
    text = StudySpec.parse({**TINY, "name": "sent-as-json"}).to_json()
    spec_parses.clear()
    first = StudySpec.from_json_cached(text)
    assert all(StudySpec.from_json_cached(text) is first for _ in range(5))
    assert spec_parses == ["model_validate_json"]
    StudySpec.from_json_cached(StudySpec.parse({**TINY, "name": "another"}).to_json())
    assert len(spec_parses) == 3  # another text: one parse to make it, one cached
