"""cdk-nag (v3) wiring: the AwsSolutions rule pack as a policy-validation plugin, and acknowledgments.

cdk-nag 3 runs as a CDK policy-validation plugin: at ``app.synth()`` (and so at ``cdk synth``) every
unacknowledged error fails synthesis, with a report written to ``<outdir>/validation-report.json``.
An acknowledgment is recorded on the construct it applies to, always with a reason.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, CfnElement, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def attach_checks(app: App) -> None:
    """Run the AwsSolutions pack over the whole app at synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept one finding (``AwsSolutions-XX`` or ``AwsSolutions-IAM5[Resource::...]``) on ``scope`` and below."""
    if len(reason.strip()) < 20:
        raise ValueError(f"{rule}: an acknowledgment needs a real reason, not {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def ref(construct: IConstruct, attribute: str | None = None) -> str:
    """How cdk-nag spells a reference in a finding id: ``<LogicalId>`` or ``<LogicalId.Arn>``.

    ``construct`` is an L2 construct (its default child is used) or a CloudFormation element.
    """
    element = construct if isinstance(construct, CfnElement) else construct.node.default_child
    if not isinstance(element, CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to refer to")
    logical_id = Stack.of(element).get_logical_id(element)
    return f"<{logical_id}.{attribute}>" if attribute else f"<{logical_id}>"
