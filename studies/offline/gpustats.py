"""GPU utilisation and memory, sampled from ``nvidia-smi`` while a run trains.

``GpuSampler`` polls ``nvidia-smi --query-gpu`` every ``interval`` seconds in a thread (one
short process per sample: no daemon to leave behind) and sums the samples up per phase. On a
machine without ``nvidia-smi`` (the CPU) it records that instead of numbers, so the results
say why there are none.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from typing import Any

QUERY = "index,name,utilization.gpu,memory.used,memory.total"


def query_gpus(timeout: float = 10.0) -> list[dict[str, Any]]:
    """One sample per GPU: index, name, utilisation (%), memory used and total (MiB)."""
    result = subprocess.run(
        ["nvidia-smi", f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    rows = []
    for line in result.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            continue
        index, name, util, used, total = parts
        try:
            rows.append(
                {
                    "index": int(index),
                    "name": name,
                    "utilization_pct": float(util),
                    "memory_used_mib": float(used),
                    "memory_total_mib": float(total),
                }
            )
        except ValueError:  # "[N/A]" on some devices
            continue
    return rows


class GpuSampler:
    """``with GpuSampler() as s: ...`` then ``s.summary()``."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.samples: list[tuple[float, list[dict[str, Any]]]] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if shutil.which("nvidia-smi") is None:
            self.error = "nvidia-smi not found (no NVIDIA GPU or driver on this machine)"

    def __enter__(self) -> GpuSampler:
        if self.error is None:
            self._thread = threading.Thread(target=self._run, name="gpu-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), query_gpus()))
            except (OSError, subprocess.SubprocessError) as exc:
                self.error = f"nvidia-smi failed: {exc}"
                return
            self._stop.wait(self.interval)

    def summary(self, since: float | None = None) -> dict[str, Any]:
        """Mean and peak utilisation and peak memory per GPU over the samples taken after
        ``since`` (a ``time.monotonic()`` value; None: all of them)."""
        samples = [(t, rows) for t, rows in self.samples if since is None or t >= since]
        if not samples:
            return {"available": False, "reason": self.error or "no samples taken"}
        per_gpu: dict[int, list[dict[str, Any]]] = {}
        for _, rows in samples:
            for row in rows:
                per_gpu.setdefault(int(row["index"]), []).append(row)
        gpus = []
        for index, rows in sorted(per_gpu.items()):
            utils = [float(r["utilization_pct"]) for r in rows]
            gpus.append(
                {
                    "index": index,
                    "name": rows[0]["name"],
                    "samples": len(rows),
                    "utilization_mean_pct": sum(utils) / len(utils),
                    "utilization_max_pct": max(utils),
                    "memory_used_max_mib": max(float(r["memory_used_mib"]) for r in rows),
                    "memory_total_mib": float(rows[0]["memory_total_mib"]),
                }
            )
        return {
            "available": True,
            "source": "nvidia-smi",
            "interval_seconds": self.interval,
            "gpus": gpus,
            "error": self.error,
        }
