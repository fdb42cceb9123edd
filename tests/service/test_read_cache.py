"""The reads kept in memory (service.read_cache) never serve what is no longer true.

First the cache on its own (a clock the test moves, records it hands in): a finished study is
filled once, single-flight; re-read after ``fresh_s``; a changed record drops what was kept;
an active study is never kept; this service's writes drop at once. Then the real service
(uvicorn, its own Ray head, SQLite MLflow): a study read while it runs is served with its final
data the moment it has finished, in every read and in the list; another process changing the
finished study's record (as ``robustness run --resume`` does) is seen within
``ROBUSTNESS_READ_CACHE_S``; and the reads wrote nothing."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import digits_spec, start_service, wait_for

from service.processes.service_process import ServiceProcess
from service.read_cache import ReadCache
from studies.errors import StudyNotFoundError
from studies.results import StudyRecord
from studies.status import StudyStatus
from studies.tracking import store_for

FRESH_S = 0.5  # the service's ROBUSTNESS_READ_CACHE_S here


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Records:
    """What the store holds, and how many times it was asked."""

    def __init__(self, record: StudyRecord) -> None:
        self.records = {record.study_id: record}
        self.fetches = 0

    def fetch(self, study_id: str) -> StudyRecord:
        self.fetches += 1
        try:
            return self.records[study_id]
        except KeyError:
            raise StudyNotFoundError(study_id) from None

    def change(self, study_id: str, status: StudyStatus) -> None:
        old = self.records[study_id]
        later = (old.updated_at or old.created_at) + timedelta(seconds=1)
        self.records[study_id] = replace(old, status=status, updated_at=later)


def a_record(status: StudyStatus = StudyStatus.SUCCEEDED) -> StudyRecord:
    created = datetime(2026, 12, 2, tzinfo=UTC)
    return StudyRecord(
        study_id="ab" * 16,
        name="cached",
        status=status,
        spec={},
        run_id="r",
        experiment_id="1",
        created_at=created,
        updated_at=created,
    )


def test_a_finished_study_is_read_once_then_again_after_fresh_s() -> None:
    clock, records = Clock(), Records(a_record())
    cache = ReadCache(fresh_s=1.0, clock=clock)
    sid = a_record().study_id
    assert cache.record(sid, records.fetch).status == StudyStatus.SUCCEEDED
    assert cache.record(sid, records.fetch).status == StudyStatus.SUCCEEDED
    assert records.fetches == 1
    clock.now += 1.5
    cache.record(sid, records.fetch)
    assert records.fetches == 2  # re-read, unchanged: what was kept stays
    assert cache.part(cache.record(sid, records.fetch), "x", lambda: "first") == "first"
    assert cache.part(cache.record(sid, records.fetch), "x", lambda: "second") == "first"


def test_a_stale_finished_study_is_served_while_one_reader_rereads_it() -> None:
    """Past ``fresh_s``, one reader re-reads the record; the others are answered from memory
    at once (a slow MLflow server does not hold a burst of reads), then see the new record."""
    clock, records = Clock(), Records(a_record())
    cache = ReadCache(fresh_s=1.0, clock=clock)
    sid = a_record().study_id
    kept = cache.record(sid, records.fetch)
    assert cache.part(kept, "summary", lambda: "kept") == "kept"
    assert cache.page("list", lambda: ["kept page"]) == ["kept page"]
    clock.now += 1.5
    assert cache.peek(sid, "summary") is None  # stale, and no one is re-reading it
    assert cache.peek_page("list") is None
    fetching, release = threading.Event(), threading.Event()

    def slow_fetch(study_id: str) -> StudyRecord:
        fetching.set()
        release.wait(10)
        return records.fetch(study_id)

    records.change(sid, StudyStatus.FAILED)  # changed elsewhere meanwhile
    rereader = threading.Thread(target=cache.record, args=(sid, slow_fetch))
    rereader.start()
    assert fetching.wait(10)
    started = time.monotonic()
    assert cache.record(sid, records.fetch) is kept  # no wait, no second query
    assert cache.peek_record(sid) is kept and cache.peek(sid, "summary") == "kept"
    assert time.monotonic() - started < 1.0
    assert records.fetches == 1  # only the first read so far: the re-read is under way

    page_computing, page_release = threading.Event(), threading.Event()

    def slow_page() -> list[str]:
        page_computing.set()
        page_release.wait(10)
        return ["new page"]

    pager = threading.Thread(target=cache.page, args=("list", slow_page))
    pager.start()
    assert page_computing.wait(10)
    assert cache.page("list", lambda: ["never"]) == ["kept page"]
    assert cache.peek_page("list") == ["kept page"]
    page_release.set()
    pager.join(10)
    assert cache.page("list", lambda: ["never"]) == ["new page"]

    release.set()
    rereader.join(10)
    assert cache.record(sid, records.fetch).status == StudyStatus.FAILED  # then the new one
    assert cache.peek(sid, "summary") is None  # what was kept for the old record is gone


def test_a_changed_record_drops_what_was_kept() -> None:
    clock, records = Clock(), Records(a_record())
    cache = ReadCache(fresh_s=1.0, clock=clock)
    sid = a_record().study_id
    cache.part(cache.record(sid, records.fetch), "trials", lambda: "old")
    records.change(sid, StudyStatus.RUNNING)  # resumed by another process
    assert cache.record(sid, records.fetch).status == StudyStatus.SUCCEEDED  # within fresh_s
    clock.now += 1.5
    running = cache.record(sid, records.fetch)
    assert running.status == StudyStatus.RUNNING
    assert cache.part(running, "trials", lambda: "live") == "live"
    assert cache.part(cache.record(sid, records.fetch), "trials", lambda: "live 2") == "live 2"
    assert records.fetches == 3  # an active study is asked on every read
    records.change(sid, StudyStatus.SUCCEEDED)  # finished again: its new data, once
    final = cache.record(sid, records.fetch)
    assert cache.part(final, "trials", lambda: "new") == "new"
    assert cache.part(cache.record(sid, records.fetch), "trials", lambda: "newer") == "new"


def test_this_services_write_drops_at_once_and_a_deleted_study_is_404() -> None:
    clock, records = Clock(), Records(a_record())
    cache = ReadCache(fresh_s=60.0, clock=clock)
    sid = a_record().study_id
    cache.record(sid, records.fetch)
    assert cache.page("list", lambda: ["before"]) == ["before"]
    assert cache.page("list", lambda: ["after"]) == ["before"]
    records.change(sid, StudyStatus.FAILED)
    cache.forget(sid)
    assert cache.record(sid, records.fetch).status == StudyStatus.FAILED
    assert cache.page("list", lambda: ["after"]) == ["after"]
    del records.records[sid]
    clock.now += 61
    with pytest.raises(StudyNotFoundError):
        cache.record(sid, records.fetch)


def test_filling_is_single_flight() -> None:
    records = Records(a_record())
    cache = ReadCache(fresh_s=60.0)
    sid = a_record().study_id
    record = cache.record(sid, records.fetch)
    computed: list[int] = []
    start = threading.Barrier(20)

    def compute() -> str:
        computed.append(1)
        time.sleep(0.2)
        return "value"

    def read() -> str:
        start.wait()
        return cache.part(record, "figure", compute)

    threads = [threading.Thread(target=read) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert computed == [1]


def test_a_burst_of_reads_of_one_record_costs_one_fetch() -> None:
    records = Records(a_record(StudyStatus.RUNNING))  # active: never kept, still shared
    slow = records.fetch

    def fetch(study_id: str) -> StudyRecord:
        time.sleep(0.3)
        return slow(study_id)

    cache = ReadCache(fresh_s=60.0)
    start = threading.Barrier(20)
    seen: list[StudyStatus] = []

    def read() -> None:
        start.wait()
        seen.append(cache.record(a_record().study_id, fetch).status)

    threads = [threading.Thread(target=read) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [StudyStatus.RUNNING] * 20
    assert records.fetches == 1
    cache.record(a_record().study_id, fetch)
    assert records.fetches == 2  # the flight is over: the next read asks again


# ---- the real service ----


@pytest.fixture(scope="module")
def service(home: Path) -> Iterator[ServiceProcess]:
    process = start_service(home, ROBUSTNESS_READ_CACHE_S=str(FRESH_S))
    try:
        yield process
    finally:
        process.stop()


def reads(client: httpx.Client, study_id: str) -> dict[str, Any]:
    base = f"/studies/{study_id}"
    out = {
        "study": client.get(base).json(),
        "trials": client.get(f"{base}/trials").json(),
        "csv": list(csv.DictReader(io.StringIO(client.get(f"{base}/trials?format=csv").text))),
        "summary": client.get(f"{base}/summary").json(),
    }
    for status in ("running", "succeeded", "failed"):
        items = client.get("/studies", params={"status": status}).json()["items"]
        out[f"listed {status}"] = study_id in [s["id"] for s in items]
    return out


@pytest.mark.slow
def test_finished_study_is_served_final_and_changes_are_seen(
    client: httpx.Client, home: Path
) -> None:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    spec = digits_spec(name="cached", epochs=2)
    key = {"Idempotency-Key": "read-cache-replay"}
    created = client.post("/studies", json=spec, headers=key)
    assert created.status_code == 202, created.text
    study_id = created.json()["id"]
    # read while it runs, as a dashboard does (nothing of an active study may be kept)
    wait_for(client, study_id, until=("running", "succeeded"), timeout_s=240)
    deadline = time.monotonic() + 240
    while (final := reads(client, study_id))["study"]["status"] == "running":
        assert time.monotonic() < deadline, final["study"]
        time.sleep(0.2)
    store = store_for(uri)
    before = store.get_study(study_id)

    # the first reads after the end: every read, and the list, show the end
    assert final["study"]["status"] == "succeeded", final["study"]
    assert final["study"]["progress"]["done"] == 4
    assert {t["status"] for t in final["trials"]} <= {"finished", "diverged"}
    assert [len(t["history"]["test_acc"]) for t in final["trials"]] == [2] * 4
    assert len(final["csv"]) == 4
    assert final["summary"]["partial"] is False and final["summary"]["trials_done"] == 4
    assert final["listed succeeded"] and not final["listed running"]
    assert reads(client, study_id) == final  # served again: the same
    after = store.get_study(study_id)
    assert (after.status, after.updated_at) == (before.status, before.updated_at)  # pure reads
    # a retried POST of the finished study: answered from memory, as it ended; another spec
    # under the same key is still refused
    replay = client.post("/studies", json=spec, headers=key)
    assert replay.status_code == 200, replay.text
    assert replay.json()["replayed"] is True and replay.json()["status"] == "succeeded"
    assert replay.json()["progress"]["done"] == 4
    other = client.post("/studies", json=spec | {"epochs": 3}, headers=key)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"], other.text
    assert store.get_study(study_id).updated_at == before.updated_at

    # another process resumes it (robustness run --resume): seen within FRESH_S
    store.set_study_status(study_id, StudyStatus.RUNNING)
    time.sleep(FRESH_S + 0.1)
    resumed = reads(client, study_id)
    assert resumed["study"]["status"] == "running"
    assert resumed["listed running"] and not resumed["listed succeeded"]
    # and it ends again, another way: the new end, not the old one
    store.set_study_status(study_id, StudyStatus.FAILED, error="stopped by a test")
    time.sleep(FRESH_S + 0.1)
    failed = reads(client, study_id)
    assert failed["study"]["status"] == "failed"
    assert failed["study"]["error"] == "stopped by a test"
    assert failed["listed failed"] and not failed["listed succeeded"]
    assert failed["trials"] == final["trials"]
