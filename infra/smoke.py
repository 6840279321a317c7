"""Post-deploy smoke test: upload a bundle, wait for the indexer, call the API.

    python -m infra.smoke --bundle artifacts/bundle [--prefix recs] [--region us-east-1] [--timeout 1200]

1. Reads the outputs of ``<prefix>-data`` and ``<prefix>-serving`` (CloudFormation).
2. Uploads the bundle to ``s3://<bucket>/bundles/<model_version>/``: every file the manifest lists,
   then ``manifest.json`` last, because the manifest's arrival is what starts the indexer.
   ``--skip-upload`` leaves S3 alone.
3. Polls ``GET /health`` until it answers 200 for that model version (the indexer has swapped the
   alias and the function has loaded the bundle), then ``POST /recommendations`` with a short
   history from the bundle's catalog and checks that ``k`` movies come back.

Requests carry the API key (``x-api-key``, read with ``apigateway:GetApiKey``) when the serving
stack has one, and are SigV4-signed (``execute-api``) otherwise (``apiAuth=iam``). Exit status 0
when every step passed, 1 otherwise, with what failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BundleError, PublishError
from core.publish import publish_bundle
from infra.errors import SmokeError

MANIFEST = "manifest.json"
BUNDLES_PREFIX = "bundles/"


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: Any


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """``{OutputKey: OutputValue}`` of a deployed stack."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as exc:  # botocore ClientError: the stack does not exist or no access
        raise SmokeError(f"cannot read the stack {stack_name}: {exc}") from exc
    outputs = stacks[0].get("Outputs", [])
    return {o["OutputKey"]: o["OutputValue"] for o in outputs}


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    path = bundle_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SmokeError(f"{path}: not a readable bundle manifest ({exc})") from exc
    if not isinstance(manifest, dict) or not manifest.get("model_version") or not isinstance(
        manifest.get("files"), dict
    ):
        raise SmokeError(f"{path}: the manifest has no model_version or files")
    return manifest


def upload_bundle(s3: Any, bucket: str, bundle_dir: Path) -> tuple[str, list[str]]:
    """Upload the bundle's files, the manifest last (``core.publish``); returns the model version and the keys in
    upload order. The same version uploaded again replaces it (a redeploy starts the indexer again)."""
    read_manifest(bundle_dir)
    try:
        published = publish_bundle(bundle_dir, f"s3://{bucket}/{BUNDLES_PREFIX}", overwrite=True, client=s3)
    except (BundleError, PublishError) as exc:
        raise SmokeError(str(exc)) from exc
    return published.model_version, [location.removeprefix(f"s3://{bucket}/") for location in published.written]


def api_key_value(apigateway: Any, key_id: str) -> str:
    return str(apigateway.get_api_key(apiKey=key_id, includeValue=True)["value"])


def sigv4_signer(session: Any, region: str) -> Callable[[urllib.request.Request], None]:
    """Sign requests for ``execute-api`` with the session's credentials (``apiAuth=iam``)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    credentials = session.get_credentials()
    if credentials is None:
        raise SmokeError("no AWS credentials to sign the API requests with")

    def sign(request: urllib.request.Request) -> None:
        aws_request = AWSRequest(
            method=request.get_method(), url=request.full_url, data=request.data, headers=dict(request.header_items())
        )
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(aws_request)
        for name, value in aws_request.headers.items():
            request.add_header(name, value)

    return sign


def call_api(
    url: str,
    method: str = "GET",
    body: Any = None,
    *,
    api_key: str | None = None,
    sign: Callable[[urllib.request.Request], None] | None = None,
    timeout: float = 30.0,
) -> ApiAnswer:
    """One request; the JSON body of any status comes back (no exception for 4xx/5xx)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("x-api-key", api_key)
    if sign:
        sign(request)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise SmokeError(f"{method} {url}: {exc}") from exc
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return ApiAnswer(status, parsed)


def wait_for_health(
    base_url: str,
    model_version: str,
    *,
    timeout: float,
    interval: float = 15.0,
    call: Callable[..., ApiAnswer] = call_api,
    say: Callable[[str], None] = print,
    **auth: Any,
) -> ApiAnswer:
    """Poll ``GET /health`` until it answers 200 for ``model_version``; SmokeError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: ApiAnswer | None = None
    while True:
        try:
            last = call(_join(base_url, "health"), **auth)
        except SmokeError as exc:
            say(f"health: {exc}")
        else:
            version = last.body.get("model_version") if isinstance(last.body, dict) else None
            if last.status == 200 and version == model_version:
                return last
            say(f"health: {last.status}, model {version!r}; waiting for {model_version!r}")
        if time.monotonic() + interval > deadline:
            raise SmokeError(f"/health did not serve {model_version!r} within {timeout:.0f} s (last: {last})")
        time.sleep(interval)


def check_recommendations(base_url: str, history_ids: Sequence[int], k: int = 5, **auth: Any) -> ApiAnswer:
    body = {"history": [{"movie_id": movie_id, "rating": 4.5} for movie_id in history_ids], "k": k}
    answer = call_api(_join(base_url, "recommendations"), "POST", body, **auth)
    if answer.status != 200:
        raise SmokeError(f"POST /recommendations answered {answer.status}: {answer.body}")
    items = answer.body.get("items") if isinstance(answer.body, dict) else None
    if not isinstance(items, list) or len(items) != k:
        raise SmokeError(f"POST /recommendations returned {len(items or [])} items, wanted {k}: {answer.body}")
    return answer


def history_from_catalog(bundle_dir: Path, count: int = 3) -> list[int]:
    """A few movie ids from the bundle's catalog (the most popular ones)."""
    try:
        catalog = json.loads((bundle_dir / "catalog.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SmokeError(f"{bundle_dir / 'catalog.json'}: {exc}") from exc
    ranked = sorted(catalog, key=lambda m: -float(m.get("popularity") or 0))
    return [int(m["movie_id"]) for m in ranked[:count]]


def _join(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + path


def run(args: argparse.Namespace, session: Any, say: Callable[[str], None] = print) -> None:
    data = stack_outputs(session.client("cloudformation"), f"{args.prefix}-data")
    serving = stack_outputs(session.client("cloudformation"), f"{args.prefix}-serving")
    bundle_dir = Path(args.bundle)
    manifest = read_manifest(bundle_dir)
    version = str(manifest["model_version"])
    if serving.get("ModelVersion") not in (None, version):
        say(f"warning: the serving stack is pinned to model {serving['ModelVersion']!r}, the bundle is {version!r}; "
            f"deploy with -c modelVersion={version}, or without the pin to follow the index")
    if not args.skip_upload:
        _, keys = upload_bundle(session.client("s3"), data["BundleBucketName"], bundle_dir)
        say(f"uploaded {len(keys)} files to s3://{data['BundleBucketName']}/{BUNDLES_PREFIX}{version}/")
    auth: dict[str, Any] = {}
    if serving.get("ApiKeyId"):
        auth["api_key"] = api_key_value(session.client("apigateway"), serving["ApiKeyId"])
    else:
        auth["sign"] = sigv4_signer(session, session.region_name)
    base = serving["ApiUrl"]
    health = wait_for_health(base, version, timeout=args.timeout, interval=args.interval, say=say, **auth)
    say(f"health: {json.dumps(health.body)[:300]}")
    answer = check_recommendations(base, history_from_catalog(bundle_dir), **auth)
    say(f"recommendations: {[item.get('title') for item in answer.body['items']]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="artifacts/bundle", help="local bundle directory (default: %(default)s)")
    parser.add_argument("--prefix", default="recs", help="the app's prefix context (default: %(default)s)")
    parser.add_argument("--region", default=None, help="AWS region (default: the AWS CLI/SDK configuration)")
    parser.add_argument("--timeout", type=float, default=1200.0,
                        help="seconds to wait for /health (default: %(default)s)")
    parser.add_argument("--interval", type=float, default=15.0,
                        help="seconds between /health polls (default: %(default)s)")
    parser.add_argument("--skip-upload", action="store_true", help="do not upload the bundle")
    args = parser.parse_args(argv)
    import boto3

    try:
        run(args, boto3.session.Session(region_name=args.region))
    except SmokeError as exc:
        print(f"smoke test FAILED: {exc}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
