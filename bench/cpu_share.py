"""Who had the CPU while a benchmark ran: a thread that reads every process's CPU time from
``/proc`` (Linux) every ``interval`` seconds, and a report of the top consumers over a window.

For telling a service's own stall from the machine's other load: a request that waited a
second while the service used little CPU waited for the cores, not for the service.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    out: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        comm_end = stat.rindex(")")
        fields = stat[comm_end + 2 :].split()
        name = cmdline.strip()[:70] or stat[stat.index("(") + 1 : comm_end]
        out[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / _TICKS)
    return out


class CpuShare:
    """Samples every process's CPU time in the background (``start``/``stop``)."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[tuple[float, dict[int, tuple[str, float]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> CpuShare:
        if Path("/proc/self/stat").exists():
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), _cpu_seconds()))
            self._stop.wait(self.interval)

    def top(self, start: float, end: float, *, n: int = 8) -> list[tuple[str, float]]:
        """The ``n`` processes that used the most CPU seconds between ``start`` and ``end``
        (``time.perf_counter`` values), as (pid and command line, seconds)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return []
        # per process: its CPU time when last seen in the window less when first seen (0 for
        # one started inside it); one that ended is counted up to its last sample
        first_seen: dict[int, float] = {}
        last_seen: dict[int, tuple[str, float]] = {}
        for index, (_, snapshot) in enumerate(inside):
            for pid, (name, seconds) in snapshot.items():
                first_seen.setdefault(pid, seconds if index == 0 else 0.0)
                last_seen[pid] = (name, seconds)  # a kernel thread's name changes: the last
        used = [
            (f"{pid} {name}", seconds - first_seen[pid])
            for pid, (name, seconds) in last_seen.items()
        ]
        return sorted(used, key=lambda item: -item[1])[:n]
