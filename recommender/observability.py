"""Logging, metrics and tracing through Powertools for AWS Lambda.

- ``logger``: JSON lines (to stderr) carrying the request's correlation id; the module loggers of
  ``recommender.*`` propagate to it, so adapter warnings come out in the same format.
- ``EmfTelemetry``: CloudWatch metrics in the Embedded Metric Format (latency, cache hits and
  misses, k-NN time ...), flushed once per invocation. Only built when metrics are enabled
  (inside Lambda by default); locally the service gets ``NoTelemetry`` and stdout stays quiet.
- ``Tracing``: X-Ray subsegments through the Powertools ``Tracer``, created only inside Lambda and not
  when ``POWERTOOLS_TRACE_DISABLED`` is set, which the CDK app does unless ``-c tracing=true`` (importing
  the X-Ray SDK costs cold-start time); elsewhere every span is a no-op.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger

SERVICE = "recommender"

class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time (redirections and test capture included)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


logger = Logger(service=SERVICE, stream=_CurrentStderr())  # type: ignore[arg-type]


class EmfTelemetry:
    """The service's ``Telemetry`` on Powertools ``Metrics`` (EMF on stdout, read by CloudWatch)."""

    def __init__(self, namespace: str, service: str = SERVICE) -> None:
        from aws_lambda_powertools import Metrics

        self.metrics = Metrics(namespace=namespace, service=service)
        self._lock = threading.Lock()

    def timing(self, name: str, milliseconds: float) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        with self._lock:
            self.metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=milliseconds)

    def count(self, name: str, value: int = 1) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        with self._lock:
            self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def flush(self) -> None:
        with self._lock:
            self.metrics.flush_metrics(raise_on_empty_metrics=False)

    def discard(self) -> None:
        """Drop what was added since the last flush (the SnapStart warm-up's figures are not traffic)."""
        with self._lock:
            self.metrics.clear_metrics()


def tracing_wanted(env: dict[str, str] | None = None) -> bool:
    """Trace only inside Lambda, unless ``POWERTOOLS_TRACE_DISABLED`` says otherwise."""
    env = dict(os.environ) if env is None else env
    if env.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true", "yes", "on"):
        return False
    return bool(env.get("LAMBDA_TASK_ROOT")) and not env.get("AWS_SAM_LOCAL")


class Tracing:
    """Subsegments when tracing is on; no-ops (and no X-Ray import) otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.tracer: Any = None
        if enabled:
            from aws_lambda_powertools import Tracer

            self.tracer = Tracer(service=SERVICE, auto_patch=False)

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        if self.tracer is None:
            yield
            return
        with self.tracer.provider.in_subsegment(name):
            yield

    def annotate(self, key: str, value: str | int | float | bool) -> None:
        """Annotate the current subsegment; tracing never fails a request."""
        if self.tracer is None:
            return
        try:
            self.tracer.put_annotation(key, value)
        except Exception as exc:
            logger.debug("x-ray annotation skipped", extra={"reason": str(exc)})
