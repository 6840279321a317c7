"""The CDK app: ``npx cdk synth`` / ``npx cdk deploy --all`` run ``python -m infra.app`` (see cdk.json).

Two stacks, deployed in order: ``<prefix>-data`` (VPC, OpenSearch, Redis, bundle bucket, indexer)
and ``<prefix>-serving`` (Lambda + live alias + scaling, REST API, alarms, dashboard). Both are
environment-agnostic: synth needs no AWS account, credentials or network.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, Tags

from infra.config import REPO_ROOT, InfraSettings
from infra.lambda_asset import lambda_asset_dir
from infra.nag import attach_checks
from infra.stacks.data import DataStack
from infra.stacks.serving import ServingStack


def build_app(app: App | None = None, *, asset_dir: Path | None = None, build_context: Path = REPO_ROOT) -> App:
    """Compose both stacks into ``app`` (a new ``App()`` reading cdk.json's context by default).

    ``asset_dir`` overrides the Lambda asset directory; ``build_context`` the indexer image's
    Docker build context (the repository root, holding ``indexer/Dockerfile``).
    """
    app = app or App()
    settings = InfraSettings.from_context(app.node)
    data = DataStack(app, settings.data_stack_name, settings=settings, build_context=build_context)
    ServingStack(
        app,
        settings.serving_stack_name,
        settings=settings,
        data=data,
        lambda_asset_dir=asset_dir or lambda_asset_dir(settings),
    )
    Tags.of(app).add("project", "serverless-movie-recs")
    if settings.nag:
        attach_checks(app)
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
