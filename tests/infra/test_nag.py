"""cdk-nag's AwsSolutions pack runs at synth; every app (each cold-start strategy, the all-switches variant) passes."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3

from infra.nag import acknowledge, attach_checks
from tests.infra.conftest import Synthesis


def _summary(synthesis: Synthesis) -> str:
    lines = [synthesis.error or ""]
    for violation in synthesis.violations:
        paths = [c["constructPath"] for c in violation.get("violatingConstructs", [])]
        lines.append(f"{violation['ruleName']}: {violation['description']} at {paths}")
    return "\n".join(lines)


def test_default_app_has_no_unacknowledged_nag_errors(default_app: Synthesis) -> None:
    assert default_app.settings.nag, "cdk.json turns the rules on"
    # the one finding is the app's own warning that an API key is the only lock (apiAuth=apiKey without apiWaf)
    assert default_app.error is None, _summary(default_app)
    assert [v["ruleName"] for v in default_app.violations] == ["Annotation::recs:api-key-only"], _summary(default_app)


@pytest.mark.parametrize("app", ["provisioned_app", "snapstart_app"])
def test_each_cold_start_strategy_has_no_unacknowledged_nag_errors(app: str, request: pytest.FixtureRequest) -> None:
    synthesis: Synthesis = request.getfixturevalue(app)
    assert synthesis.error is None, _summary(synthesis)
    assert [v["ruleName"] for v in synthesis.violations] == ["Annotation::recs:api-key-only"], _summary(synthesis)


def test_variant_app_has_no_unacknowledged_nag_errors(variant_app: Synthesis) -> None:
    assert variant_app.error is None and not variant_app.violations, _summary(variant_app)


def test_nag_fails_synth_on_an_unacknowledged_error(tmp_path) -> None:
    """The same wiring catches a non-compliant resource (so an empty report above means something)."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Probe")
    s3.Bucket(stack, "Open")  # no TLS-only policy, no access logs
    attach_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-S10" in report


def test_an_acknowledgment_needs_a_reason() -> None:
    stack = Stack(App(), "Probe")
    with pytest.raises(ValueError, match="real reason"):
        acknowledge(stack, "AwsSolutions-S1", "because")
