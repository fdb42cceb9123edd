"""A POST parses its spec once (issue 10, "validate once"): the route turns the body into a
``StudySpec`` and the service creates, replays and submits the study with that object; the
trial limit is checked on it, not by a second parse. Ray's Jobs API is outside what is
counted here: a recorder takes the submissions (the real one: tests/service/test_api.py)."""

from __future__ import annotations

import json
from pathlib import Path

from service.core import StudyService
from service.jobs import JobInfo
from service.routes.studies import parse_study_body
from service.settings import Settings
from tests.service.service_helpers import digits_spec


class RecordedJobs:
    """Takes the service's submissions instead of Ray's Jobs API."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, study_id: str, *, resume: bool = False, attempt: int = 0) -> None:
        self.submitted.append(study_id)

    def states(self) -> dict[str, JobInfo]:
        return {study_id: JobInfo("RUNNING", "") for study_id in self.submitted}

    def info(self, study_id: str) -> JobInfo:
        return self.states().get(study_id, JobInfo("MISSING", "no such job"))


def test_a_post_parses_its_spec_once_and_a_replay_once_more(
    tmp_path: Path, spec_parses: list[str]
) -> None:
    settings = Settings(
        robustness_home=tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    jobs = RecordedJobs()
    service = StudyService(settings, jobs=jobs)  # type: ignore[arg-type]
    raw = json.dumps(digits_spec("parsed-once")).encode()
    spec_parses.clear()

    spec = parse_study_body(raw, max_trials=settings.max_trials)
    created = service.create(spec, idempotency_key="once")
    service._submitter.shutdown(wait=True)  # the submission, off the request path
    assert jobs.submitted == [created.record.study_id]
    assert spec_parses == ["model_validate"], spec_parses  # the body, and nothing after it

    again = service.create(
        parse_study_body(raw, max_trials=settings.max_trials), idempotency_key="once"
    )
    assert again.replayed and again.record.study_id == created.record.study_id
    assert len(spec_parses) == 2  # the replay's body; the record's spec is compared as stored
