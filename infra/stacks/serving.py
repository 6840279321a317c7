"""The serving tier: the recommendation Lambda (live alias and its cold-start strategy: on demand, provisioned
concurrency with its scaling, or SnapStart), the REST API and the monitoring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Annotations, CfnOutput, Stack
from constructs import Construct

from infra.config import REPO_ROOT, InfraSettings
from infra.constructs.api import RecommendationsApi
from infra.constructs.common import retention
from infra.constructs.monitoring import Monitoring
from infra.constructs.predictive_scaling import PredictiveScaling
from infra.constructs.recommender_function import RecommenderFunction
from infra.stacks.data import DataStack

_COLD_START_WORDS = {
    "provisioned": "with provisioned concurrency",
    "snapstart": "with SnapStart",
    "none": "on demand",
}


class ServingStack(Stack):
    """Reads the data stack's endpoints, role and security group; deployed after it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: InfraSettings,
        data: DataStack,
        lambda_asset_dir: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"Movie recommender: serving tier (Lambda {_COLD_START_WORDS[settings.cold_start]}, REST API, "
            "alarms)",
            **kwargs,
        )
        if settings.model_version is not None:
            Annotations.of(self).add_info(
                f"The function is pinned to model {settings.model_version} (context modelVersion): after the "
                "indexer moves to another model it serves the popularity fallback until a redeploy. Without the "
                "pin it follows the live index's model."
            )
        self.recommender = RecommenderFunction(
            self,
            "Recommender",
            settings=settings,
            network=data.network,
            identity=data.recommender_identity,
            environment=data.recommender_environment(),
            asset_dir=lambda_asset_dir,
        )
        self.api = RecommendationsApi(self, "Api", settings=settings, handler=self.recommender.alias)
        # Predictive scaling (coldStart=provisioned): an hourly forecaster writes one scheduled MinCapacity action
        # per hour on the alias' scalable target; target tracking handles what the forecast misses.
        self.predictive_scaling: PredictiveScaling | None = None
        scalable_target = self.recommender.scalable_target
        if settings.forecaster and scalable_target is not None:
            self.predictive_scaling = PredictiveScaling(
                self,
                "PredictiveScaling",
                function_name=self.recommender.function.function_name,
                alias_name=self.recommender.alias.alias_name,
                scalable_target_resource_id=self.recommender.scalable_resource_id,
                scalable_target=scalable_target,
                min_capacity=settings.provisioned_concurrency_min,
                max_capacity=settings.provisioned_concurrency_max,
                log_retention=retention(settings.log_retention_days),
                dry_run=settings.predictive_scaling_dry_run,
                asset_dir=REPO_ROOT / "build" / "forecaster",
            )

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            settings=settings,
            api=self.api.api,
            alias=self.recommender.alias,
            domain=data.vector_store.domain,
            cache=data.cache,
            indexer=data.indexer,
            topic=data.alerts.topic,
            forecaster=self.predictive_scaling.function if self.predictive_scaling else None,
            provisioned_concurrency=settings.provisioned,
        )

        CfnOutput(self, "ApiUrl", value=self.api.url)
        if self.api.api_key is not None:
            CfnOutput(self, "ApiKeyId", value=self.api.api_key.key_id,
                      description="aws apigateway get-api-key --include-value --api-key <id>")
        CfnOutput(self, "FunctionName", value=self.recommender.function.function_name)
        if scalable_target is not None:
            CfnOutput(self, "ScalableTargetResourceId", value=self.recommender.scalable_resource_id)
        if settings.model_version is not None:
            CfnOutput(self, "ModelVersion", value=settings.model_version,
                      description="The pinned model (context modelVersion); without it the live index's model")
        CfnOutput(self, "DashboardName", value=f"{settings.prefix}-recommender")
