"""The root of every error the project raises, and the errors of the kernel itself.

Each app has its own ``errors.py`` whose base class derives from ``RecsError``, so a caller can catch
"anything this project refused" in one clause and a specific failure by its own name.
"""

from __future__ import annotations


class RecsError(Exception):
    """Something this project refused or could not do; the message says what and why."""


class SettingsError(RecsError, ValueError):
    """A setting (an argument or a ``RECS_*`` variable) is missing or invalid; the message names it."""


class BundleError(RecsError):
    """A model bundle is missing, incomplete, tampered with or inconsistent; the message names the file."""


class TowerWeightsError(RecsError, ValueError):
    """The weights of a tower are missing an array or have inconsistent shapes."""


class EmbeddedStoreError(RecsError):
    """The embedded store is missing, empty or inconsistent."""


class LocationError(RecsError, ValueError):
    """A location is neither a local path nor a well-formed ``s3://bucket/key`` URL."""


class ConnectionSetupError(RecsError):
    """A client for OpenSearch, Redis or an AWS service cannot be built (no credentials, no region,
    an unreadable secret)."""


class CommandError(RecsError):
    """A ``recs`` command failed for a reason the user can act on; printed without a traceback."""


class LockError(RecsError):
    """A run lock could not be read, taken, extended or released (its backend failed)."""

    exit_code = 1


class LockHeldError(LockError):
    """Another run holds the lock (``core.locks``); try again later."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class LockLostError(LockError):
    """This run's lock expired and was taken by another run; it stops before making anything live."""


class LiveIndexError(RecsError):
    """The live index cannot be read (OpenSearch down or refusing, an alias over indices of several models)."""


class PublishError(RecsError):
    """A bundle (or a file beside it) could not be published to a bundle root; nothing new was made visible."""
