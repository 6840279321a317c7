"""The public REST API: API Gateway (regional) in front of the recommender's ``live`` alias."""

from __future__ import annotations

import json

from aws_cdk import Annotations, Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.config import InfraSettings
from infra.constructs.common import log_group
from infra.nag import acknowledge
from recommender.settings import MAX_HISTORY_ITEMS, MAX_K

STAGE_NAME = "v1"

# A coarse gate at the edge, never stricter than the handler (recommender/api_models.py, which is
# the authority and names the offending field): the body is an object, the history a bounded array
# of objects, k an integer in range. Everything else (unknown fields, ratings, filters) is the
# handler's to judge, so a request the gateway lets through can still get the handler's 422.
RECOMMENDATION_REQUEST_SCHEMA = apigw.JsonSchema(
    schema=apigw.JsonSchemaVersion.DRAFT4,
    title="RecommendationRequest",
    type=apigw.JsonSchemaType.OBJECT,
    properties={
        "history": apigw.JsonSchema(
            type=apigw.JsonSchemaType.ARRAY,
            max_items=MAX_HISTORY_ITEMS,
            items=apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT),
        ),
        "k": apigw.JsonSchema(type=apigw.JsonSchemaType.INTEGER, minimum=1, maximum=MAX_K),
        "exclude_seen": apigw.JsonSchema(type=apigw.JsonSchemaType.BOOLEAN),
        "filters": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT),
        "explain": apigw.JsonSchema(type=apigw.JsonSchemaType.BOOLEAN),
    },
)

# Browsers on any origin may call the API (the try-it page with a deployed API's URL and key): the
# key or SigV4 travels in headers, never in cookies. API Gateway answers the preflights (OPTIONS, a
# mock integration without authorization, as the Fetch standard sends no credentials with them); the
# function adds Access-Control-Allow-Origin to its own answers (recommender/handler.py, CORS), and the
# gateway's own errors below carry it too, so a page can read a 403 (bad key) or a 429.
CORS_ALLOW_HEADERS = [
    "Content-Type", "X-Api-Key", "X-Correlation-Id", "Authorization", "X-Amz-Date", "X-Amz-Security-Token",
]

# Errors raised by the gateway itself use the handler's error body:
# {"error": code, "message": ..., "errors": [{"field", "location", "reason"}], "request_id": ...}
# Gateway response templates allow plain $context substitution only (no VTL, so no escaping): the
# validator's own explanation, which contains quotes, goes to the access log, not into the body.
_BAD_BODY_TEMPLATE = (
    '{"error": "validation_error", "message": $context.error.messageString, "errors": [{"field": "body", '
    '"location": "body", "reason": "the body must be a JSON object; history an array of at most {max_history} objects; '
    'k an integer from 1 to {max_k}; exclude_seen and explain booleans; filters an object"}], '
    '"request_id": "$context.requestId"}'
).replace("{max_k}", str(MAX_K)).replace("{max_history}", str(MAX_HISTORY_ITEMS))
_GATEWAY_ERROR_TEMPLATE = (
    '{"error": "%s", "message": $context.error.messageString, "errors": [], "request_id": "$context.requestId"}'
)

_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "apiKeyId": "$context.identity.apiKeyId",
    "caller": "$context.identity.caller",
    "requestTime": "$context.requestTimeEpoch",
    "method": "$context.httpMethod",
    "resource": "$context.resourcePath",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationStatus": "$context.integration.status",
    "error": "$context.error.message",
    "validationError": "$context.error.validationErrorString",
}


class RecommendationsApi(Construct):
    """REST API with stage throttling, body and parameter validation, JSON access logs, JSON error
    bodies, and either an API key with a usage plan (``apiAuth=apiKey``) or IAM auth (``iam``).

    Routes (all proxied to the alias): ``POST /recommendations``, ``GET /movies/search``,
    ``GET /movies/{movie_id}``, ``GET /movies/{movie_id}/similar``, ``GET /health``, ``GET /openapi.json``;
    ``OPTIONS`` on each (CORS preflights, answered by the gateway).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: InfraSettings, handler: lambda_.IFunction
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = log_group(self, "AccessLogs", settings)
        use_key = settings.api_auth == "apiKey"
        # Access logs, like execution logs, need the region's account-wide API Gateway CloudWatch Logs role: without
        # it the stage fails to create with "CloudWatch Logs role ARN must be set in account settings to enable
        # logging" (Amazon API Gateway Developer Guide, "Set up CloudWatch logging for REST APIs in API Gateway",
        # https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html: "To enable CloudWatch
        # Logs, you must grant API Gateway permission to read and write logs to CloudWatch for your account"). With
        # apiGatewayAccountRole=create the stack sets it (AWS::ApiGateway::Account, one per region per account, so the
        # role and the setting are retained on delete); with `existing` preflight checks the account has one.
        create_account_role = settings.api_gateway_account_role == "create"
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{settings.prefix}-recommendations",
            description="Movie recommendations (two-tower model, OpenSearch k-NN)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=create_account_role,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if create_account_role else None,
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            default_cors_preflight_options=apigw.CorsOptions(
                allow_origins=apigw.Cors.ALL_ORIGINS,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=CORS_ALLOW_HEADERS,
                max_age=Duration.minutes(10),
            ),
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.IAM if not use_key else apigw.AuthorizationType.NONE,
                api_key_required=use_key,
            ),
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                throttling_rate_limit=settings.api_rate_limit,
                throttling_burst_limit=settings.api_burst_limit,
                metrics_enabled=True,
                tracing_enabled=settings.tracing,
                logging_level=apigw.MethodLoggingLevel.ERROR if settings.api_execution_logs else None,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(_ACCESS_LOG_FIELDS)),
            ),
        )

        account = self.api.node.try_find_child("Account")  # CDK's AWS::ApiGateway::Account (with the role)
        if create_account_role and account is not None:
            # CDK orders the account setting after the API but not before the stage, which needs it.
            self.api.deployment_stage.node.add_dependency(account)

        integration = apigw.LambdaIntegration(handler, proxy=True, allow_test_invoke=False)
        validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        request_model = self.api.add_model(
            "RecommendationRequest", content_type="application/json", schema=RECOMMENDATION_REQUEST_SCHEMA
        )
        root = self.api.root
        root.add_resource("recommendations").add_method(
            "POST", integration, request_validator=validator, request_models={"application/json": request_model}
        )
        movies = root.add_resource("movies")
        movies.add_resource("search").add_method(
            "GET", integration, request_validator=validator,
            # declared, not required here: a missing q gets the handler's 422 naming it (never stricter at the edge)
            request_parameters={"method.request.querystring.q": False, "method.request.querystring.limit": False},
        )
        movie = movies.add_resource("{movie_id}")
        movie.add_method(
            "GET", integration, request_validator=validator,
            request_parameters={"method.request.path.movie_id": True},
        )
        movie.add_resource("similar").add_method(
            "GET", integration, request_validator=validator,
            request_parameters={"method.request.path.movie_id": True, "method.request.querystring.k": False},
        )
        root.add_resource("health").add_method("GET", integration)
        root.add_resource("openapi.json").add_method("GET", integration)

        json_headers = {"Content-Type": "'application/json'", "Access-Control-Allow-Origin": "'*'"}
        self.api.add_gateway_response(
            "BadRequestBody",
            type=apigw.ResponseType.BAD_REQUEST_BODY,
            status_code="422",
            response_headers=json_headers,
            templates={"application/json": _BAD_BODY_TEMPLATE},
        )
        for response_id, response_type, code in (
            ("Default4xx", apigw.ResponseType.DEFAULT_4_XX, "client_error"),
            ("Default5xx", apigw.ResponseType.DEFAULT_5_XX, "gateway_error"),
        ):
            self.api.add_gateway_response(
                response_id,
                type=response_type,
                response_headers=json_headers,
                templates={"application/json": _GATEWAY_ERROR_TEMPLATE % code},
            )

        self.api_key: apigw.IApiKey | None = None
        if use_key:
            self.api_key = self.api.add_api_key("DefaultKey", api_key_name=f"{settings.prefix}-default")
            plan = self.api.add_usage_plan(
                "UsagePlan",
                name=f"{settings.prefix}-default",
                throttle=apigw.ThrottleSettings(
                    rate_limit=settings.api_rate_limit, burst_limit=settings.api_burst_limit
                ),
                quota=apigw.QuotaSettings(limit=settings.api_quota_per_day, period=apigw.Period.DAY)
                if settings.api_quota_per_day
                else None,
            )
            plan.add_api_stage(stage=self.api.deployment_stage)
            plan.add_api_key(self.api_key)

        self.web_acl: wafv2.CfnWebACL | None = None
        if settings.api_waf:
            self.web_acl = self._rate_limiting_web_acl(settings)
        else:
            acknowledge(
                self.api,
                "AwsSolutions-APIG3",
                "No WAF web ACL unless apiWaf=true (about $6/month plus $0.60 per million requests); stage and "
                "usage-plan throttling bound abuse meanwhile.",
            )
        if use_key and not settings.api_waf:
            # API keys identify and throttle callers; they do not authorize them (Amazon API Gateway Developer Guide,
            # "Usage plans and API keys for REST APIs in API Gateway", best practices:
            # https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-api-usage-plans.html).
            Annotations.of(self).add_warning_v2(
                "recs:api-key-only",
                "apiAuth=apiKey: an API key is the only lock on the API, and API keys are not an authorization "
                "mechanism. Deploy with -c apiAuth=iam (SigV4), or add -c apiWaf=true for a rate-based WAF rule "
                "(docs/deploy.md, 'Who may call the API').",
            )
        acknowledge(
            self.api,
            "AwsSolutions-COG4",
            "Callers are services, not end users: authorization is an API key with a usage plan or SigV4 (IAM), "
            "chosen by the apiAuth context; no Cognito user pool.",
        )
        if use_key:
            acknowledge(
                self.api,
                "AwsSolutions-APIG4",
                "apiAuth=apiKey: every method requires an API key bound to a usage plan (throttle, optional quota). "
                "Deploy with -c apiAuth=iam for SigV4 authorization.",
            )
        if create_account_role:
            acknowledge(
                self.api,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "The account-wide API Gateway logging role (apiGatewayAccountRole=create) uses the AWS managed "
                "policy written for exactly that role.",
            )
        if not settings.api_execution_logs:
            acknowledge(
                self.api,
                "AwsSolutions-APIG6",
                "Execution logs (every request's processing, billed per GB) are opt-in with -c apiExecutionLogs=true; "
                "JSON access logs of every request are always on.",
            )

    def _rate_limiting_web_acl(self, settings: InfraSettings) -> wafv2.CfnWebACL:
        """A regional web ACL on the stage: allow by default, block an IP above ``apiWafRateLimit`` requests per
        5 minutes (AWS WAF Developer Guide, "Using rate-based rule statements in AWS WAF",
        https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-type-rate-based.html; a web ACL on
        an API Gateway REST API stage: https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-control-access-aws-waf.html)."""
        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
            )

        web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            description="Rate limit per client IP in front of the recommendations API",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(f"{settings.prefix}-api"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=settings.api_waf_rate_limit, aggregate_key_type="IP", evaluation_window_sec=300
                        )
                    ),
                    visibility_config=visibility(f"{settings.prefix}-api-rate-limit"),
                )
            ],
        )
        # the stage ARN refers to the stage, so CloudFormation creates the association after it
        wafv2.CfnWebACLAssociation(
            self, "WebAclAssociation", resource_arn=self.api.deployment_stage.stage_arn, web_acl_arn=web_acl.attr_arn
        )
        return web_acl

    @property
    def url(self) -> str:
        return self.api.url
