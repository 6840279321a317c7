"""What a run tells its operator: a progress bar on a terminal, JSON log lines otherwise, a summary.

Logs go to stderr (one JSON object per line when stderr is not a terminal, which is the case in
a Fargate task, so CloudWatch Logs Insights can query the fields). The summary goes to stdout as
one JSON object, the last line a run prints.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TextIO


@dataclass
class RunSummary:
    """The end of a run: what changed, how long it took."""

    job: str
    target: str
    alias: str
    alias_before: str | None
    alias_after: str | None
    model_version: str | None = None
    index: str | None = None
    documents: int = 0
    seconds: float = 0.0
    generation: int | None = None
    deleted_indices: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def docs_per_s(self) -> float:
        return round(self.documents / self.seconds, 1) if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        out["docs_per_s"] = self.docs_per_s
        return out


class Progress(Protocol):
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


class _LogProgress:
    """Progress as JSON log lines, at most one every ``interval`` seconds."""

    def __init__(self, reporter: Reporter, name: str, total: int | None, interval: float = 5.0) -> None:
        self.reporter, self.name, self.total, self.interval = reporter, name, total, interval
        self.done = 0
        self.started = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.reporter.log("progress", step=self.name, done=self.done, total=self.total,
                              docs_per_s=round(self.done / max(now - self.started, 1e-9), 1))

    def close(self) -> None:
        pass


class _BarProgress:
    def __init__(self, name: str, total: int | None, stream: TextIO) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=name, unit="doc", unit_scale=True, file=stream, dynamic_ncols=True)

    def update(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


class Reporter:
    """Logs, progress and the summary of one run."""

    def __init__(self, stream: TextIO | None = None, out: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.out = out if out is not None else sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty

    def log(self, event: str, level: str = "info", **fields: Any) -> None:
        if self.tty:
            extras = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
            prefix = "" if level == "info" else f"{level.upper()}: "
            print(f"{prefix}{event.replace('_', ' ')}" + (f"  {extras}" if extras else ""), file=self.stream,
                  flush=True)
            return
        record = {"ts": round(time.time(), 3), "level": level, "logger": "recs.indexer", "event": event, **fields}
        print(json.dumps(record, default=str), file=self.stream, flush=True)

    def progress(self, name: str, total: int | None) -> Progress:
        if self.tty:
            try:
                return _BarProgress(name, total, self.stream)
            except ImportError:  # tqdm is optional: fall back to log lines
                pass
        return _LogProgress(self, name, total)

    def summary(self, summary: RunSummary) -> None:
        data = summary.to_dict()
        if self.tty:
            rows = [
                ("job", summary.job), ("target", summary.target),
                ("alias", f"{summary.alias}: {summary.alias_before} -> {summary.alias_after}"),
                ("model version", summary.model_version), ("documents", summary.documents),
                ("seconds", f"{summary.seconds:.2f}"), ("docs/s", summary.docs_per_s),
                ("generation", summary.generation),
                ("deleted", ", ".join(summary.deleted_indices) or "-"),
            ]
            rows += [(k.replace("_", " "), v) for k, v in summary.details.items()]
            width = max(len(k) for k, _ in rows)
            for key, value in rows:
                print(f"  {key:<{width}}  {value}", file=self.stream)
        else:
            self.log("summary", **data)
        print(json.dumps(data, default=str), file=self.out, flush=True)
