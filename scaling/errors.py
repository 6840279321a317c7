"""Errors of the predictive-scaling forecaster (standard library only: the forecaster's asset ships it)."""

from __future__ import annotations

from typing import Any

from core.errors import RecsError


class ScalingError(RecsError):
    """The forecaster could not plan or write its plan; the subclass says why."""


class MetricsError(ScalingError):
    """CloudWatch could not be read (API error, throttling, no permission...)."""


class InsufficientHistoryError(ScalingError, ValueError):
    """The series is too short for the requested season."""


class ScalingActionsError(ScalingError):
    """Application Auto Scaling refused a call; ``done`` (an ``ApplyResult``) says what had been written before."""

    def __init__(self, message: str, done: Any) -> None:
        super().__init__(message)
        self.done = done


class ForecasterError(ScalingError):
    """The plan could not be written (no scalable target, or Application Auto Scaling refused)."""
