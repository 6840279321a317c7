"""Predictive scaling of the serving Lambda's provisioned concurrency.

Once an hour (EventBridge -> ``scaling.lambda_handler``) or on demand (``recs scaling plan``):

1. ``metrics``: read the alias's recent history from CloudWatch (Invocations, ConcurrentExecutions,
   Duration p99);
2. ``forecast``: forecast each of the next hours (hour-of-week profile, recent trend, upper quantile);
3. ``concurrency``: turn requests/s into execution environments (Little's law with the p99
   duration, headroom), clamped to the configured floor and maximum;
4. ``plan``: one minimum capacity per hour, with the fall-backs for bad data;
5. ``actions``: write them as Application Auto Scaling scheduled actions on the alias; the
   target-tracking policy of the serving stack keeps handling what the forecast misses.

The handler path is pure Python plus boto3 (no numpy), see ``packaging.build_forecaster_asset``.
"""
