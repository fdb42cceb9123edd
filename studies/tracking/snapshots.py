"""Snapshots: a finished study's trials as one artifact, ``trials.json``, on its parent run.

Written when a study ends (``StudyStore.set_study_status`` to a terminal status, unless this
store wrote a current one already), tagged with a fresh token (``robustness.snapshot``), and
kept in memory keyed by that token, so a resumed and re-finished study is never served stale.
The format: ``trials_to_json``. ``trials.json`` keeps NaN and +-inf exactly.
"""

from __future__ import annotations

import array
import binascii
import json
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from studies.errors import TrackingError
from studies.results import TrialRecord

_SNAPSHOTS_KEPT = 8  # studies; a 1000-trial x 164-epoch study holds ~25 MB of Python floats


class SnapshotCache:
    """Finished studies' trials by (study, token), least recently used first; and, per study,
    the token this process wrote last with the trial-write count at the time (a study
    finished right after its snapshot, as the runner's report does, is not read twice)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[str, str], list[TrialRecord]] = OrderedDict()
        self._marks: dict[str, tuple[str, int]] = {}

    def get(self, study_id: str, token: str) -> list[TrialRecord] | None:
        with self._lock:
            found = self._kept.get((study_id, token))
            if found is not None:
                self._kept.move_to_end((study_id, token))
            return found

    def keep(self, study_id: str, token: str, trials: list[TrialRecord]) -> None:
        with self._lock:
            for old in [k for k in self._kept if k[0] == study_id]:  # its older snapshots
                del self._kept[old]
            self._kept[(study_id, token)] = trials
            while len(self._kept) > _SNAPSHOTS_KEPT:
                self._kept.popitem(last=False)

    def mark(self, study_id: str, token: str, writes: int) -> None:
        self._marks[study_id] = (token, writes)

    def marked(self, study_id: str, writes: int) -> str | None:
        """The token written here last, if no trial write happened since."""
        mark = self._marks.get(study_id)
        return mark[0] if mark is not None and mark[1] == writes else None


_HISTORY_ENCODING = "float64-le-base64"


def trials_to_json(trials: Iterable[TrialRecord], *, study_id: str) -> str:
    """The snapshot's format (version 2): ``{"version", "study_id", "history_encoding",
    "trials": [...]}``, one object per trial with the fields of ``TrialRecord``; each curve of
    ``history`` is its float64 values, little-endian, base64: exact (NaN and inf included) and
    ~8x faster to read back than JSON numbers (0.03 s against 0.28 s for 656k values here)."""
    rows = [
        {
            "trial_id": t.trial_id,
            "optimizer": t.optimizer,
            "lr": t.lr,
            "warmup": t.warmup,
            "warmup_steps": t.warmup_steps,
            "seed": t.seed,
            "status": t.status,
            "node": t.node,
            "run_id": t.run_id,
            "train_seconds": t.train_seconds,
            "repeat": t.repeat,
            "sample": t.sample,
            "history": {name: _encode_curve(values) for name, values in t.history.items()},
        }
        for t in trials
    ]
    payload = {
        "version": 2,
        "study_id": study_id,
        "history_encoding": _HISTORY_ENCODING,
        "trials": rows,
    }
    return json.dumps(payload, separators=(",", ":"))


def trials_from_json(data: bytes | str) -> list[TrialRecord]:
    """Read ``trials.json`` (version 2, or version 1 with plain JSON numbers)."""
    payload = json.loads(data)
    version = payload.get("version")
    if version == 1:
        return [TrialRecord(**row) for row in payload["trials"]]
    if version != 2 or payload.get("history_encoding") != _HISTORY_ENCODING:
        raise TrackingError(f"unknown trials.json version {version!r}")
    trials = []
    for row in payload["trials"]:
        row["history"] = {name: _decode_curve(text) for name, text in row["history"].items()}
        trials.append(TrialRecord(**row))
    return trials


def _encode_curve(values: Sequence[float]) -> str:
    curve = array.array("d", values)
    if sys.byteorder == "big":
        curve.byteswap()
    return binascii.b2a_base64(curve.tobytes(), newline=False).decode("ascii")


def _decode_curve(text: str) -> list[float]:
    curve = array.array("d", binascii.a2b_base64(text))
    if sys.byteorder == "big":
        curve.byteswap()
    return curve.tolist()
