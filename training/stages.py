"""The wall time and peak resident memory of each stage of a run (loading, examples, training, evaluation)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def peak_rss_mib() -> float:
    """This process's peak resident memory since the last ``reset_peak_rss`` (``VmHWM``; else ``ru_maxrss``)."""
    peak = _status_kib("VmHWM")
    if peak is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return peak / 1024.0


def reset_peak_rss() -> bool:
    """Reset the peak (``VmHWM``) to the current resident memory (Linux >= 4.0); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Stages:
    """Wall time and peak resident memory of each stage of a run (``with stages("load"): ...``).

    The peak of a stage is the process's peak while it ran (the memory it inherited included): the
    high-water mark is reset as each stage starts, where Linux allows it (``resettable``). A stage run more than
    once (each member of an ensemble) records its total time and its highest peak.
    """

    def __init__(self) -> None:
        self.records: dict[str, dict[str, float]] = {}
        self.resettable = True

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.resettable = reset_peak_rss() and self.resettable
        started = time.perf_counter()
        try:
            yield
        finally:  # a stage entered again (an ensemble's members each build examples and train) adds up
            earlier = self.records.get(name, {"seconds": 0.0, "peak_rss_mib": 0.0})
            self.records[name] = {"seconds": round(earlier["seconds"] + time.perf_counter() - started, 2),
                                  "peak_rss_mib": round(max(earlier["peak_rss_mib"], peak_rss_mib()), 1)}

    def to_dict(self) -> dict[str, Any]:
        return {"stages": self.records, "peak_reset_per_stage": self.resettable}
