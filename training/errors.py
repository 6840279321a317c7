"""Errors of training and evaluation; each names what failed and what to do about it."""

from __future__ import annotations

from core.errors import RecsError


class TrainingError(RecsError):
    """Training or evaluation could not run; the subclass says why."""


class DataError(TrainingError):
    """A data directory or file is missing or malformed; the message names the file and line."""
