"""What the service's reads keep in memory, so that a dashboard's refreshes on a finished study
cost no MLflow query (measured by ``bench/load.py``: 50 clients on one uvicorn process queued
on the GIL behind one or two queries per read, p99 1.8 s).

* A finished (terminal) study's record and what is derived from it (trials, CSV, summary,
  figures) are kept by study id and served from memory. Such a study changes only if someone
  resumes it (``robustness run --study-id ID --resume``, another process) or deletes it, so its
  record is read again at most every ``fresh_s`` seconds (one reader does it; those arriving
  meanwhile are answered from memory, without waiting for it: stale while it revalidates, by
  one query's time at most); a record that changed drops everything kept for it. The service's
  own writes drop the study at once (``forget``).
* Pages of the study list are kept ``fresh_s`` seconds (and served while one reader computes
  the page again), and dropped by any write of this service and whenever a read sees a study
  newly finished (a GET that shows a study ``succeeded`` is not followed by a list that shows
  it running).
* Active studies are never kept: each read of one asks the store (and Ray).

Filling is single-flight: the requests that arrive while a value (or any study's record) is
being read wait for it instead of reading their own. Nothing here writes anywhere: a GET stays a pure read.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar, cast

from studies.errors import StudyNotFoundError
from studies.results import StudyRecord

T = TypeVar("T")

_Version = tuple[object, ...]


def version_of(record: StudyRecord) -> _Version:
    """What a write to a study's parent run changes (every status write stamps updated_at)."""
    return (record.status, record.updated_at, record.restarts, record.error, record.num_trials)


@dataclass
class _Finished:
    record: StudyRecord
    version: _Version
    checked_at: float
    parts: dict[str, object] = field(default_factory=dict)
    flights: dict[str, threading.Lock] = field(default_factory=dict)


class _Flight:
    """One fetch of a record under way, and its answer for the readers that wait on it."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.done = threading.Event()
        self.value: StudyRecord | None = None
        self.error: BaseException | None = None


class ReadCache:
    def __init__(
        self,
        *,
        fresh_s: float,
        max_studies: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fresh_s = fresh_s
        self.max_studies = max_studies
        self._clock = clock
        self._lock = threading.Lock()
        self._studies: OrderedDict[str, _Finished] = OrderedDict()
        self._generation = 0  # bumped by forget: a fill that began before a write is dropped
        self._flights: dict[str, _Flight] = {}  # record fetches under way, by study id
        self._pages: dict[Hashable, tuple[float, object]] = {}
        self._page_flights: dict[Hashable, threading.Lock] = {}

    # ---- finished studies ---------------------------------------------------------------

    def record(self, study_id: str, fetch: Callable[[str], StudyRecord]) -> StudyRecord:
        """The study's record: a finished study's from memory (re-read when older than
        ``fresh_s``), any other's from ``fetch``. Readers that arrive while a fetch of the same
        study is under way take its answer (a burst of 50 costs one query, not 50 in a row
        under the GIL), unless this service wrote since it began; where the study is a kept
        finished one being re-read, they take the kept record at once (stale while it
        revalidates). ``StudyNotFoundError`` passes through."""
        with self._lock:
            entry = self._studies.get(study_id)
            flight = self._flights.get(study_id)
            mine = flight is None or flight.generation != self._generation
            if entry is not None:
                self._studies.move_to_end(study_id)
                if self._clock() - entry.checked_at < self.fresh_s or (
                    self.fresh_s > 0 and not mine
                ):
                    # fresh, or another reader is re-reading it: no one waits on that query
                    # (under load, one round trip to an MLflow server took 0.5-0.9 s and
                    # held every read of the study behind it: bench/README.md, burst.py)
                    return entry.record
            if mine:
                flight = self._flights[study_id] = _Flight(self._generation)
        assert flight is not None
        if not mine:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.value is not None
            return flight.value
        try:
            flight.value = self._fetched(study_id, fetch, flight.generation)
            return flight.value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                if self._flights.get(study_id) is flight:
                    del self._flights[study_id]
            flight.done.set()

    def _fetched(
        self,
        study_id: str,
        fetch: Callable[[str], StudyRecord],
        generation: int,
    ) -> StudyRecord:
        checked_at = self._clock()
        try:
            fresh = fetch(study_id)
        except StudyNotFoundError:  # deleted behind our back
            self.forget(study_id)
            raise
        version = version_of(fresh)
        with self._lock:
            if generation != self._generation:  # this service wrote meanwhile: keep nothing
                return fresh
            if not fresh.status.terminal:
                if self._studies.pop(study_id, None) is not None:  # resumed elsewhere
                    self._pages.clear()
                return fresh
            current = self._studies.get(study_id)
            if current is not None and current.version == version:  # unchanged
                current.checked_at = checked_at
                return current.record
            self._studies[study_id] = _Finished(fresh, version, checked_at)
            self._pages.clear()  # newly seen finished: no list page may show it active
            while len(self._studies) > self.max_studies:
                self._studies.popitem(last=False)
            return fresh

    def part(self, record: StudyRecord, name: str, compute: Callable[[], T]) -> T:
        """``compute()``, kept with a finished study's record (single-flight); computed afresh
        for an active study, or for a record that is not the one kept."""
        with self._lock:
            entry = self._studies.get(record.study_id)
            if entry is None or entry.version != version_of(record):
                entry = None
            elif name in entry.parts:
                return cast(T, entry.parts[name])
            else:
                flight = entry.flights.setdefault(name, threading.Lock())
        if entry is None:
            return compute()
        with flight:
            with self._lock:
                if name in entry.parts:
                    return cast(T, entry.parts[name])
            value = compute()  # an error is not kept: the next reader tries again
            with self._lock:
                entry.parts[name] = value
                entry.flights.pop(name, None)
            return value

    def _servable(self, study_id: str) -> _Finished | None:
        """The kept entry when it is fresh or being re-read (under the lock)."""
        entry = self._studies.get(study_id)
        if entry is None:
            return None
        flight = self._flights.get(study_id)
        rereading = (
            self.fresh_s > 0 and flight is not None and flight.generation == self._generation
        )
        if self._clock() - entry.checked_at >= self.fresh_s and not rereading:
            return None
        return entry

    def peek_record(self, study_id: str) -> StudyRecord | None:
        """A finished study's record when it is kept and fresh (or being re-read), else None
        (never waits)."""
        with self._lock:
            entry = self._servable(study_id)
            return None if entry is None else entry.record

    def peek(self, study_id: str, name: str) -> object | None:
        """What is kept as ``name`` for a finished study whose record is fresh (or being
        re-read), else None; never waits on a query (an async route answers a hit on the
        event loop)."""
        with self._lock:
            entry = self._servable(study_id)
            return None if entry is None else entry.parts.get(name)

    # ---- the study list -----------------------------------------------------------------

    def peek_page(self, key: Hashable) -> object | None:
        """A page kept less than ``fresh_s`` ago, else None (never waits)."""
        with self._lock:
            hit = self._pages.get(key)
            if hit is None or not self._page_servable(key, hit[0]):
                return None
            return hit[1]

    def _page_servable(self, key: Hashable, kept_at: float) -> bool:
        """Fresh, or another reader is computing it again (under the lock)."""
        flight = self._page_flights.get(key)
        return self._clock() - kept_at < self.fresh_s or (flight is not None and flight.locked())

    def page(self, key: Hashable, compute: Callable[[], T]) -> T:
        """A page of the list, kept ``fresh_s`` seconds (single-flight per page)."""
        if self.fresh_s <= 0:
            return compute()
        with self._lock:
            hit = self._pages.get(key)
            if hit is not None and self._page_servable(key, hit[0]):
                return cast(T, hit[1])
            flight = self._page_flights.setdefault(key, threading.Lock())
        with flight:
            with self._lock:
                hit = self._pages.get(key)
                if hit is not None and self._clock() - hit[0] < self.fresh_s:
                    return cast(T, hit[1])
                generation = self._generation
            started = self._clock()
            value = compute()
            with self._lock:
                if generation == self._generation:
                    if len(self._pages) >= 64:  # many distinct pages: start over
                        self._pages.clear()
                    self._pages[key] = (started, value)
            return value

    # ---- this service's writes ----------------------------------------------------------

    def forget(self, study_id: str | None = None) -> None:
        """After a write of this service: drop the study (None: only the list pages)."""
        with self._lock:
            self._generation += 1
            if study_id is not None:
                self._studies.pop(study_id, None)
            self._pages.clear()
