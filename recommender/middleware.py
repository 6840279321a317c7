"""What a request must pass before a route sees it.

- ``reject_unfit_requests``: a Lambda handler middleware (Powertools' ``lambda_handler_decorator``)
  answering, before the resolver, what must not reach it: events that are not API Gateway REST
  proxy events (400 ``unsupported_event``), bodies over the size limit (413), bodies that are not
  JSON by their content type (415) or not base64 of UTF-8 text when flagged base64 (400).
- ``json_object``: the resolver's JSON body deserializer; a JSON array is a 422 ``validation_error``
  (Powertools would validate an array's first element as the body: its form-field rule). It runs
  where Powertools parses the body, so only for routes that take one: a wrong method on a known
  path stays a 405 whatever the body.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.middleware_factory import lambda_handler_decorator

from recommender import composition
from recommender.responses import JSON, cors_headers, error_body
from recommender.settings import MAX_BODY_BYTES

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A header of a raw event, by case-insensitive name."""
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


@lambda_handler_decorator
def reject_unfit_requests(handler: Handler, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer 400/413/415 the requests ``precheck`` refuses; pass the others to ``handler``."""
    early = precheck(event, _max_body_bytes())
    return early if early is not None else handler(event, context)


def json_object(text: str | bytes) -> Any:
    """``json.loads``, refusing a JSON array as a request body (``RequestValidationError``, 422)."""
    value = json.loads(text)
    if isinstance(value, list):
        raise RequestValidationError(
            [{"type": "json_array", "loc": ("body",), "msg": "Input should be a JSON object, not an array"}]
        )
    return value


def precheck(event: Mapping[str, Any], max_body_bytes: int) -> dict[str, Any] | None:
    """The answer to a request that must not reach the resolver, else ``None``."""
    if not isinstance(event.get("httpMethod"), str) or not isinstance(event.get("path"), str):
        return _standalone(
            event, 400, "unsupported_event", "This function answers API Gateway REST proxy events only."
        )
    size = _body_size(event)
    if size > max_body_bytes:
        return _standalone(
            event, 413, "body_too_large", f"The body has {size} bytes; the limit is {max_body_bytes}.",
            [{"field": "(body)", "location": "body", "reason": f"larger than {max_body_bytes} bytes"}],
        )
    content_type = (header(event, "content-type") or "").split(";")[0].strip().lower()
    if size and content_type and not (content_type == JSON or content_type.endswith("+json")):
        return _standalone(
            event, 415, "unsupported_media_type", f"The body must be {JSON}, not {content_type}.",
            [{"field": "Content-Type", "location": "header", "reason": f"{content_type} is not supported"}],
        )
    if event.get("isBase64Encoded") and event.get("body"):
        try:
            base64.b64decode(event["body"], validate=True).decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return _standalone(
                event, 400, "invalid_json", "The body is not UTF-8 encoded JSON.",
                [{"field": "(body)", "location": "body", "reason": "not valid base64 of UTF-8 text"}],
            )
    return None


def _body_size(event: Mapping[str, Any]) -> int:
    body = event.get("body")
    if not body:
        return 0
    if event.get("isBase64Encoded"):
        return (len(body) * 3) // 4
    return len(body.encode("utf-8")) if isinstance(body, str) else len(body)


def _standalone(
    event: Mapping[str, Any], status: int, code: str, message: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """A whole Lambda response, in the shape the resolver gives its own (error body, CORS headers)."""
    request_id = (event.get("requestContext") or {}).get("requestId")
    headers = {"Content-Type": JSON}
    if isinstance(event.get("headers"), dict):
        headers.update(cors_headers(header(event, "origin")))
    return {
        "statusCode": status,
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "body": json.dumps(error_body(code, message, errors, request_id=request_id)),
        "isBase64Encoded": False,
    }


def _max_body_bytes() -> int:
    container = composition.peek()
    return container.settings.max_body_bytes if container is not None else MAX_BODY_BYTES
