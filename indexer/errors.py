"""Errors of the indexer; each names what failed and what to do about it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core import errors as core_errors
from core.errors import RecsError
from core.errors import SettingsError as CoreSettingsError


class IndexerError(RecsError):
    """An indexer run failed; the message says why. Nothing half-built is ever made live."""

    exit_code = 1


class SettingsError(IndexerError, CoreSettingsError):
    """A setting (environment variable or argument) is missing or invalid."""

    exit_code = 2


class DeltaError(IndexerError):
    """A catalog delta is malformed; nothing was written. ``problems`` names each bad row."""

    exit_code = 2

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{source}: rejected, nothing was written ({len(self.problems)} problem(s)):\n  {shown}{more}")


@dataclass(frozen=True)
class DocumentFailure:
    """One document the index refused (or that still failed after every retry)."""

    doc_id: str
    status: int
    reason: str

    def __str__(self) -> str:
        return f"movie {self.doc_id}: HTTP {self.status} {self.reason}"


class BulkLoadError(IndexerError):
    """Documents were refused by the index; the run stops before anything is made live."""

    def __init__(self, index: str, failures: Sequence[DocumentFailure], stopped_early: bool = False) -> None:
        self.index = index
        self.failures = list(failures)
        listing = "\n  ".join(str(f) for f in self.failures)
        tail = " (stopped after this many failures)" if stopped_early else ""
        super().__init__(f"{index}: {len(self.failures)} document(s) failed{tail}:\n  {listing}")


class VerificationError(IndexerError):
    """A freshly loaded index did not pass its checks (count, probe queries); it was not made live."""


class LockHeldError(IndexerError, core_errors.LockHeldError):
    """Another indexer run holds the lock (``indexer.locks``, the kernel's ``core.locks``)."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class LockLostError(IndexerError, core_errors.LockLostError):
    """This run's lock expired and was taken by another run; it stops before touching the alias."""


class NoLiveIndexError(IndexerError):
    """The alias points nowhere yet (run a full rebuild first)."""


class RollbackError(IndexerError):
    """There is no earlier index to roll back to (or the one named does not exist)."""


class GenerationBumpError(IndexerError):
    """The catalog changed but the cache generation could not be bumped (cached answers stay until their TTL)."""


class SourceError(IndexerError):
    """A bundle or delta location (local path, ``s3://`` URL, bucket and key) is missing or not understood."""

    exit_code = 2
