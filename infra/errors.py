"""Errors of the deployment tooling: the CDK app's settings, the asset packaging, the smoke test."""

from __future__ import annotations

from core.errors import RecsError, SettingsError


class InfraError(RecsError):
    """Something about deploying failed; the subclass says what."""


class InfraConfigError(InfraError, SettingsError):
    """A context value is missing its required form; the message names the context key."""


class PackagingError(InfraError):
    """The asset could not be built, or it breaks the budget or the forbidden-package rule."""


class SmokeError(InfraError):
    """A smoke-test step failed; the message says which and why."""
