"""Logging for the forecaster: one JSON object per line (Lambda, pipes) or plain text (a terminal).

``event(logger, level, name, **fields)`` logs ``{"level", "event", "logger", ...fields}``;
the ``scaling`` logger writes to its own handler so the output is the same in Lambda and locally.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LOGGER_NAME = "scaling"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if k != "event")
        return f"{record.levelname.lower()}: {record.getMessage()}" + (f" ({extra})" if extra else "")


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def configure(*, json_lines: bool | None = None, stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send the ``scaling`` logger to ``stream`` (stderr), as JSON unless it is a terminal."""
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not (hasattr(stream, "isatty") and stream.isatty())
    logger = get_logger()
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def event(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    logger.log(level, message, extra={"fields": fields})
