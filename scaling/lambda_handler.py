"""The scheduled forecaster Lambda (EventBridge, hourly by default): ``scaling.lambda_handler.handler``.

Needs only boto3 (part of the Lambda runtime) and this package; settings come from
``RECS_SCALING_*`` variables (set by ``infra/constructs/predictive_scaling.py``) and are read once
per execution environment. A metrics failure still writes a floor plan; a failure to write the
actions raises, so the invocation counts as an error (and EventBridge's retry policy applies).
"""

from __future__ import annotations

from typing import Any

from scaling import log
from scaling.runner import run_forecaster
from scaling.settings import ScalingSettings

_settings: ScalingSettings | None = None


def _get_settings() -> ScalingSettings:
    global _settings
    if _settings is None:
        _settings = ScalingSettings.from_env()
        log.configure(json_lines=True)
    return _settings


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    settings = _get_settings()
    dry_run = bool(event.get("dry_run")) if isinstance(event, dict) and "dry_run" in event else None
    result = run_forecaster(settings, dry_run=dry_run)
    return result.to_json()
