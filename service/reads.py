"""The part of ``StudyService`` that answers reads: a study, a page of the list, its trials,
CSV, summary and figures. Pure: a read shows the record (``running`` for a study whose job
runs) and never writes or submits; a finished study's record and what derives from it are
kept in memory (``service.read_cache``). ``StudyService`` inherits these methods and
provides the state declared here."""

from __future__ import annotations

import io
import logging
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg

from service.errors import FigureNotAvailableError
from service.jobs import JobInfo
from service.lifecycle import StudyLifecycle
from service.schemas import FigureFormat, FigureName
from service.views import StudyView, figure_part
from studies.analysis import figures, report
from studies.analysis.summary import StudySummary
from studies.errors import RobustnessError, StudyNotFoundError
from studies.results import StudyRecord, TrialRecord
from studies.status import StudyStatus

log = logging.getLogger("service")

_STUDY_ID = re.compile(r"^[0-9a-f]{8,64}$")  # ours are 32; the CLI's 12


def check_study_id(study_id: str) -> None:
    """Ids are hex (the service makes 32 digits, the CLI 12); anything else is unknown and
    goes nowhere."""
    if not _STUDY_ID.fullmatch(study_id):
        raise StudyNotFoundError(f"no study has the id {study_id!r}")


class StudyReads(StudyLifecycle):
    """Reads; the state is ``StudyService``'s (see its ``__init__``), the job lookups the
    lifecycle's."""

    uri: str

    def _record(self, study_id: str) -> StudyRecord:
        """The record a read shows: a finished study's from memory (see service.read_cache)."""
        return self.reads.record(study_id, self.store.get_study)

    def _trials_of(self, record: StudyRecord) -> list[TrialRecord]:
        study_id = record.study_id
        return self.reads.part(record, "trials", lambda: list(self.store.load_trials(study_id)))

    def get(self, study_id: str, *, with_trials: bool = True) -> StudyView:
        check_study_id(study_id)
        record = self._record(study_id)
        view = self._view(record, self._job_of(record))
        if not with_trials:
            return view
        trials = list(self._trials_of(record))
        return StudyView(view.record, view.status, view.error, trials=trials)

    def rendered(self, study_id: str, name: str, render: Callable[[StudyView], bytes]) -> bytes:
        """``render(view)`` of the study with its trials: a finished study's once (the bytes
        an HTTP route sends, kept as ``name``), an active one's on every call."""
        view = self.get(study_id)
        return self.reads.part(view.record, name, lambda: render(view))

    def cached(self, study_id: str, name: str) -> bytes | str | None:
        """What a read of a finished study kept as ``name`` (``rendered``'s bodies,
        ``"trials.csv"``, ``"summary.json"``, ``figure_part(...)``), None when that needs a
        query: lets an async route answer from memory without a thread."""
        value = self.reads.peek(study_id, name)
        return value if isinstance(value, bytes | str) else None

    def page_body(
        self,
        *,
        status: StudyStatus | None,
        limit: int,
        offset: int,
        render: Callable[[list[StudyView]], bytes],
    ) -> bytes:
        """``render`` of a page, kept as the page is (``cached_page_body`` peeks at it)."""
        return self.reads.page(
            ("body", status, limit, offset),
            lambda: render(self.page(status=status, limit=limit, offset=offset)),
        )

    def cached_page_body(
        self, *, status: StudyStatus | None, limit: int, offset: int
    ) -> bytes | None:
        value = self.reads.peek_page(("body", status, limit, offset))
        return value if isinstance(value, bytes) else None

    def page(self, *, status: StudyStatus | None, limit: int, offset: int) -> list[StudyView]:
        """A page of the list, kept ``read_cache_s`` seconds (dropped by this service's
        writes and when a read sees a study newly finished)."""
        return list(
            self.reads.page(
                (status, limit, offset),
                lambda: self._page(status=status, limit=limit, offset=offset),
            )
        )

    def _page(self, *, status: StudyStatus | None, limit: int, offset: int) -> list[StudyView]:
        records = self.store.list_studies(status=status, limit=limit, offset=offset)
        states = self._job_states() if any(not r.status.terminal for r in records) else {}
        views = []
        for record in records:
            job = states.get(record.study_id, JobInfo("MISSING")) if states else None
            if record.status.terminal:
                job = None
            views.append(self._view(record, job))
        return views

    def trials(self, study_id: str) -> list[TrialRecord]:
        check_study_id(study_id)
        return list(self._trials_of(self._record(study_id)))  # 404 for an unknown study

    def trials_csv(self, study_id: str) -> str:
        check_study_id(study_id)
        record = self._record(study_id)

        def write() -> str:
            with tempfile.TemporaryDirectory() as tmp:  # the trials.csv artifact's writer
                path = report.write_trials_csv(
                    self._trials_of(record), Path(tmp) / "trials.csv", report.study_metric(record)
                )
                return path.read_text()

        return self.reads.part(record, "trials.csv", write)

    def summary(self, study_id: str) -> StudySummary:
        check_study_id(study_id)
        record = self._record(study_id)
        return self.reads.part(
            record, "summary", lambda: report.load_summary(study_id, tracking_uri=self.uri)
        )

    def summary_json(self, study_id: str) -> bytes:
        """The summary as the API sends it (a finished study's, once)."""
        check_study_id(study_id)
        record = self._record(study_id)
        return self.reads.part(
            record, "summary.json", lambda: self.summary(study_id).to_json(indent=None).encode()
        )

    def figure(self, study_id: str, name: FigureName, fmt: FigureFormat) -> bytes:
        """A figure's bytes. A finished study's: from memory, else the file the runner
        logged on its parent run when it finished, else rendered once (single-flight: the
        requests that arrive meanwhile wait for that one rendering, not render their own).
        A running study's is rendered from its partial summary, each time."""
        check_study_id(study_id)
        record = self._record(study_id)

        def make() -> bytes:
            summary = self.summary(study_id)
            finished = StudyStatus.parse(summary.status).terminal and not summary.partial
            logged = self._logged_figure(study_id, name, fmt) if finished else None
            return logged if logged is not None else self._render(study_id, summary, name, fmt)

        return self.reads.part(record, figure_part(name, fmt), make)

    def _logged_figure(self, study_id: str, name: FigureName, fmt: FigureFormat) -> bytes | None:
        try:
            return self.store.download_artifact(study_id, f"{name.value}.{fmt.value}")
        except StudyNotFoundError:  # not logged (an older study, or this format was not)
            return None
        except RobustnessError as exc:
            log.warning("study %s: could not read its logged %s: %s", study_id, name.value, exc)
            return None

    def _render(
        self, study_id: str, summary: StudySummary, name: FigureName, fmt: FigureFormat
    ) -> bytes:
        if summary.trials_counted == 0:
            raise FigureNotAvailableError(
                f"study {study_id} has no finished trial yet, so no {name.value} figure"
            )
        fig = figures.render(summary, name.value)
        if fig is None:
            kind = "a sampled study" if summary.sampled is not None else "a grid study"
            raise FigureNotAvailableError(
                f"study {study_id} has no {name.value} figure (it is {kind}; its figures: "
                f"{', '.join(figures.figure_names(summary))})"
            )
        FigureCanvasAgg(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt.value)
        return buffer.getvalue()

    def _job_of(self, record: StudyRecord) -> JobInfo | None:
        """The job of an active study (a finished one's record is final: Ray is not asked)."""
        return None if record.status.terminal else self._job(record.study_id)

    def _view(self, record: StudyRecord, job: JobInfo | None) -> StudyView:
        """What a read shows: the record, with ``running`` for a study whose job runs. Pure:
        a job that ended behind the record's back is the reconciler's to settle."""
        if record.status.terminal or job is None:
            return StudyView(record, record.status, record.error)
        if job.state in ("RUNNING", "SUCCEEDED"):
            # SUCCEEDED with an active record: the runner's last write is on its way
            return StudyView(record, StudyStatus.RUNNING, None)
        return StudyView(record, record.status, None)
