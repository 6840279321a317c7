"""EBS volume limits of OpenSearch Service data nodes, per instance type: the rule synth applies to
``opensearchVolumeGiB`` so that a size the service would refuse fails at synth, not 20 minutes into a deploy.

Source: Amazon OpenSearch Service Developer Guide, "Amazon OpenSearch Service quotas", section "EBS volume size
quotas" (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/limits.html#ebsresource; the table as
published in the awsdocs/amazon-opensearch-service-developer-guide repository, doc_source/limits.md). The domain uses
gp3 volumes (``infra/constructs/vector_store.py``), so the maximum is the table's gp3 column; the minimum is 10 GiB for
every type. Types that hold data on instance storage only (r6gd, i3: "N/A") take no EBS volume and are absent, as are
types the table does not list (newer generations: add them here from the same page, with their gp3 maximum).
``recs deploy preflight`` also asks the region itself (DescribeInstanceTypeLimits) and reports any disagreement.
"""

from __future__ import annotations

MIN_VOLUME_GIB = 10
_TIB = 1024

GP3_MAX_VOLUME_GIB: dict[str, int] = {
    "t3.small.search": 100,
    "t3.medium.search": 200,
    "m5.large.search": 1 * _TIB,
    "m5.xlarge.search": 2 * _TIB,
    "m5.2xlarge.search": 3 * _TIB,
    "m5.4xlarge.search": 6 * _TIB,
    "m5.12xlarge.search": 18 * _TIB,
    "m6g.large.search": 1 * _TIB,
    "m6g.xlarge.search": 2 * _TIB,
    "m6g.2xlarge.search": 3 * _TIB,
    "m6g.4xlarge.search": 6 * _TIB,
    "m6g.8xlarge.search": 12 * _TIB,
    "m6g.12xlarge.search": 18 * _TIB,
    "c5.large.search": 256,
    "c5.xlarge.search": 512,
    "c5.2xlarge.search": 1 * _TIB,
    "c5.4xlarge.search": 1536,
    "c5.9xlarge.search": 3584,
    "c5.18xlarge.search": 7 * _TIB,
    "c6g.large.search": 256,
    "c6g.xlarge.search": 512,
    "c6g.2xlarge.search": 1 * _TIB,
    "c6g.4xlarge.search": 1536,
    "c6g.8xlarge.search": 3 * _TIB,
    "c6g.12xlarge.search": 4608,
    "r5.large.search": 2 * _TIB,
    "r5.xlarge.search": 3 * _TIB,
    "r5.2xlarge.search": 6 * _TIB,
    "r5.4xlarge.search": 12 * _TIB,
    "r5.12xlarge.search": 24 * _TIB,
    "r6g.large.search": 2 * _TIB,
    "r6g.xlarge.search": 3 * _TIB,
    "r6g.2xlarge.search": 6 * _TIB,
    "r6g.4xlarge.search": 12 * _TIB,
    "r6g.8xlarge.search": 16 * _TIB,
    "r6g.12xlarge.search": 24 * _TIB,
}
"""Instance type -> the largest gp3 volume per data node, in GiB (1 TiB = 1024 GiB)."""


def volume_limits(instance_type: str) -> tuple[int, int] | None:
    """``(minimum, maximum)`` gp3 volume in GiB for ``instance_type``; ``None`` when the table does not list it."""
    maximum = GP3_MAX_VOLUME_GIB.get(instance_type)
    return None if maximum is None else (MIN_VOLUME_GIB, maximum)
