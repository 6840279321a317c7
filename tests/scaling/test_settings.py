"""Settings: RECS_SCALING_* variables, explicit arguments win, errors name the variable."""

from __future__ import annotations

import pytest

from core.errors import SettingsError
from scaling.settings import ScalingSettings


def test_environment_then_overrides():
    env = {
        "RECS_SCALING_FUNCTION_NAME": "recs-recommender",
        "RECS_SCALING_MAX_CAPACITY": "40",
        "RECS_SCALING_HEADROOM": "1.3",
        "RECS_SCALING_DRY_RUN": "yes",
        "AWS_REGION": "eu-west-1",
    }
    settings = ScalingSettings.from_env(env, max_capacity=60)
    assert settings.function_name == "recs-recommender"
    assert settings.max_capacity == 60
    assert settings.headroom == 1.3
    assert settings.dry_run is True
    assert settings.aws_region == "eu-west-1"
    assert settings.scalable_resource_id == "function:recs-recommender:live"
    assert settings.metric_function_name == "recs-recommender"


def test_resource_id_alone_names_the_function_and_alias():
    settings = ScalingSettings.from_env({"RECS_SCALING_RESOURCE_ID": "function:api:blue"})
    assert settings.metric_function_name == "api"
    assert settings.metric_alias == "blue"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RECS_SCALING_MAX_CAPACITY", "ten", "RECS_SCALING_MAX_CAPACITY"),
        ("RECS_SCALING_MAX_CAPACITY", "0", "RECS_SCALING_MAX_CAPACITY"),
        ("RECS_SCALING_MIN_CAPACITY", "-1", "RECS_SCALING_MIN_CAPACITY"),
        ("RECS_SCALING_HEADROOM", "0.8", "RECS_SCALING_HEADROOM"),
        ("RECS_SCALING_QUANTILE", "1.5", "RECS_SCALING_QUANTILE"),
        ("RECS_SCALING_RESOURCE_ID", "service/x/y", "RECS_SCALING_RESOURCE_ID"),
        ("RECS_SCALING_ACTION_PREFIX", "a:b", "RECS_SCALING_ACTION_PREFIX"),
        ("RECS_SCALING_DURATION_STATISTIC", "median", "RECS_SCALING_DURATION_STATISTIC"),
        ("RECS_SCALING_DRY_RUN", "maybe", "RECS_SCALING_DRY_RUN"),
        ("RECS_SCALING_LEAD_MINUTES", "90", "RECS_SCALING_LEAD_MINUTES"),
        ("RECS_SCALING_TARGET_UTILIZATION", "1.5", "RECS_SCALING_TARGET_UTILIZATION"),
        ("RECS_SCALING_TARGET_UTILIZATION", "0.01", "RECS_SCALING_TARGET_UTILIZATION"),
        ("RECS_SCALING_TARGET_UTILIZATION", "60%", "RECS_SCALING_TARGET_UTILIZATION"),
    ],
)
def test_bad_values_name_the_variable(variable, value, message):
    with pytest.raises(SettingsError, match=message):
        ScalingSettings.from_env({variable: value})


def test_min_above_max_and_unknown_settings():
    with pytest.raises(SettingsError, match="RECS_SCALING_MAX_CAPACITY"):
        ScalingSettings.from_env({}, min_capacity=20, max_capacity=10)
    with pytest.raises(SettingsError, match="unknown"):
        ScalingSettings.from_env({}, colour="blue")
    with pytest.raises(SettingsError, match="RECS_SCALING_FUNCTION_NAME"):
        _ = ScalingSettings().scalable_resource_id


def test_target_utilization_is_off_by_default_and_read_from_its_variable():
    assert ScalingSettings().target_utilization == 0.0
    assert ScalingSettings.from_env({"RECS_SCALING_TARGET_UTILIZATION": "0.6"}).target_utilization == 0.6
    assert ScalingSettings.from_env({"RECS_SCALING_TARGET_UTILIZATION": "0"}).target_utilization == 0.0
