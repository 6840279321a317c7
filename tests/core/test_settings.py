"""core.settings: one declarative mechanism, used by every component (recommender, indexer, forecaster, CDK app)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.errors import SettingsError
from core.settings import check, describe, label, load, override, parse_value, setting, variables
from indexer.settings import IndexerSettings
from infra.config import InfraSettings
from recommender.settings import ServiceSettings
from scaling.settings import ScalingSettings


@dataclass(frozen=True)
class Inner:
    depth: int = setting("RECS_T_DEPTH", default=3)


@dataclass(frozen=True)
class Sample:
    name: str = setting("RECS_T_NAME", "LEGACY_NAME", default="x")
    count: int = setting("RECS_T_COUNT", default=1)
    ratio: float | None = setting("RECS_T_RATIO", default=None)
    on: bool = setting("RECS_T_ON", default=False)
    token: str | None = setting("RECS_T_TOKEN", default=None, secret=True)
    inner: Inner = field(default_factory=Inner)
    internal: str = "never read"

    def __post_init__(self) -> None:
        check(self.count >= 0, self, "count", "must not be negative")


def test_only_declared_names_are_read_first_one_wins() -> None:
    env = {"RECS_T_NAME": "a", "LEGACY_NAME": "b", "RECS_T_INTERNAL": "no", "RECS_INTERNAL": "no"}
    s = load(Sample, env)
    assert (s.name, s.internal) == ("a", "never read")
    assert load(Sample, {"LEGACY_NAME": "b"}).name == "b"
    assert load(Sample, {"RECS_T_NAME": "  ", "LEGACY_NAME": "b"}).name == "b"  # blank = not set


def test_values_are_parsed_by_type_from_strings_or_json_values() -> None:
    s = load(Sample, {"RECS_T_COUNT": "7", "RECS_T_RATIO": "0.5", "RECS_T_ON": "yes", "RECS_T_DEPTH": "9"})
    assert (s.count, s.ratio, s.on, s.inner.depth) == (7, 0.5, True, 9)
    j = load(Sample, {"RECS_T_COUNT": 7, "RECS_T_RATIO": 1, "RECS_T_ON": False})
    assert (j.count, j.ratio, j.on) == (7, 1.0, False)
    assert parse_value(int | None, "", "X") is None
    for kind, raw in ((int, "7.5"), (int, 7.5), (int, True), (float, "abc"), (bool, "maybe")):
        with pytest.raises(SettingsError, match=r"^X: "):
            parse_value(kind, raw, "X")


def test_overrides_win_none_means_not_given_and_unknown_ones_are_refused() -> None:
    s = load(Sample, {"RECS_T_COUNT": "7"}, count=2, name=None, depth=5)
    assert (s.count, s.name, s.inner.depth) == (2, "x", 5)
    with pytest.raises(SettingsError, match=r"unknown setting.*colour"):
        load(Sample, {}, colour="red")
    assert override(s, count=4, depth=8, name=None) == Sample(name="x", count=4, inner=Inner(8))
    with pytest.raises(SettingsError, match="colour"):
        override(s, colour="red")


def test_errors_name_the_variable_at_load_and_in_checks() -> None:
    with pytest.raises(SettingsError, match=r"^RECS_T_COUNT: 'many' is not an integer$"):
        load(Sample, {"RECS_T_COUNT": "many"})
    with pytest.raises(SettingsError, match=r"^RECS_T_COUNT: must not be negative$"):
        load(Sample, {"RECS_T_COUNT": "-1"})
    assert label(Sample, "internal") == "internal"


def test_describe_masks_secrets_and_variables_lists_every_name() -> None:
    assert describe(load(Sample, {"RECS_T_TOKEN": "hunter2"}))["token"] == "***"
    assert variables(Sample) == [("RECS_T_NAME", "LEGACY_NAME"), ("RECS_T_COUNT",), ("RECS_T_RATIO",), ("RECS_T_ON",),
                                 ("RECS_T_TOKEN",), ("RECS_T_DEPTH",)]


@pytest.mark.parametrize("component", [ServiceSettings, IndexerSettings, ScalingSettings])
def test_every_component_reads_only_recs_or_aws_variables(component: type) -> None:
    names = [n for names in variables(component) for n in names]
    assert names and all(n.startswith(("RECS_", "AWS_")) for n in names)
    assert len(names) == len(set(names))
    # no variable is derived by reflection from a field name (the old RECS_SCALING_AWS_REGION)
    assert "RECS_SCALING_AWS_REGION" not in names


def test_the_recommender_and_the_indexer_agree_on_shared_variables() -> None:
    """The same RECS_* variable means the same thing to both: same name, same parse, same default."""
    service = {names: f for names, f in zip(variables(ServiceSettings), _field_names(ServiceSettings), strict=True)}
    indexer = {names: f for names, f in zip(variables(IndexerSettings), _field_names(IndexerSettings), strict=True)}
    shared = set(service) & set(indexer)
    assert {n[0] for n in shared} >= {"RECS_OPENSEARCH_URL", "RECS_OPENSEARCH_ALIAS", "RECS_REDIS_URL",
                                       "RECS_REDIS_AUTH_SECRET_ARN", "RECS_AWS_REGION", "RECS_EMBEDDED_STORE"}
    env = {"RECS_OPENSEARCH_URL": "https://search-x.eu-west-1.es.amazonaws.com", "RECS_OPENSEARCH_ALIAS": "films",
           "RECS_REDIS_URL": "rediss://c:6380", "AWS_REGION": "eu-west-1", "RECS_EMBEDDED_STORE": "/s"}
    s, i = ServiceSettings.from_env(env=env), IndexerSettings.from_env(env=env)
    assert (s.opensearch_url, s.opensearch_alias, s.redis_url, s.aws_region, s.embedded_store) == (
        i.opensearch_url, i.alias, i.redis_url, i.aws_region, i.embedded_store)


def test_the_cdk_app_uses_the_same_mechanism_with_context_keys() -> None:
    assert ("lambdaMemoryMiB",) in variables(InfraSettings)
    with pytest.raises(SettingsError, match=r"^context 'lambdaMemoryMiB': 'lots' is not an integer$"):
        InfraSettings.from_mapping({"lambdaMemoryMiB": "lots"})


def _field_names(cls: type) -> list[str]:
    from dataclasses import fields, is_dataclass

    out: list[str] = []
    for f in fields(cls):
        value = f.default_factory() if callable(f.default_factory) else None  # type: ignore[misc]
        if value is not None and is_dataclass(value):
            out += [g.name for g in fields(value) if g.metadata]
        elif f.metadata:
            out.append(f.name)
    return out
