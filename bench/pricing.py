"""AWS Lambda list prices and the bill of a simulated week (used by ``python -m bench.scaling``).

**The one price table** of the benchmarks: US East (N. Virginia), USD, first on-demand duration tier
(up to 6 billion GB-seconds a month), no free tier (it does not apply to a function with provisioned
concurrency, and the comparison should not depend on other functions of the account), no Savings
Plans. Read on ``PRICES_READ`` from the sources in ``SOURCES``; what could and could not be checked
offline is said next to each figure.

| part | x86_64 | arm64 | billed on |
|---|---:|---:|---|
| requests | $0.20 / 1M | $0.20 / 1M | every invocation |
| duration, on-demand | $0.0000166667 / GB-s | $0.0000133334 / GB-s | run time (1 ms steps, init included) x GB |
| provisioned concurrency | $0.0000041667 / GB-s | $0.0000033334 / GB-s | configured environments x GB x time |
| duration on provisioned | $0.0000097222 / GB-s | $0.0000077778 / GB-s | run time of the requests they serve |
| SnapStart cache (Python) | $0.0000015046 / GB-s | $0.0000015046 / GB-s | GB x time a version is active (3 h min) |
| SnapStart restore (Python) | $0.0001397998 / GB | $0.0001397998 / GB | GB x each restore |

Consequences the bench relies on:

* **break-even utilisation** of provisioned concurrency: a provisioned environment busy a fraction
  ``u`` of the time costs ``provisioned + u x provisioned_duration`` per GB-s against ``u x duration``
  on demand, so it is cheaper above ``u = provisioned / (duration - provisioned_duration)`` =
  0.600 on both architectures;
* since 2025-08-01 the INIT phase of on-demand cold starts is billed as duration (AWS Compute Blog,
  "AWS Lambda standardizes billing for INIT Phase"); provisioned environments' inits were billed
  before that already (here at the provisioned duration rate: the rate is an assumption, and the
  amounts are cents a week either way);
* SnapStart and provisioned concurrency cannot be combined on one function version (Lambda
  SnapStart documentation, "Supported features and limitations").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PRICES_READ = "2026-12-01"
REGION = "us-east-1"
SOURCES = {
    "pricing": "https://aws.amazon.com/lambda/pricing/",
    "init_billing": "https://aws.amazon.com/blogs/compute/aws-lambda-standardizes-billing-for-init-phase/",
    "snapstart": "https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html",
    "snapstart_python_ga": (
        "https://aws.amazon.com/blogs/aws/aws-lambda-snapstart-for-python-and-net-functions-is-now-generally-available/"
    ),
}
PROVENANCE = (
    "The AWS pricing page renders its rate tables client-side: the offline copies read on "
    f"{PRICES_READ} show its texts and worked examples but not every figure. Seen in them or in copies "
    "of the table: requests $0.20 per 1M and x86_64 on-demand duration $0.0000166667 per GB-s (the page's "
    "examples), arm64 on-demand $0.0000133334 per GB-s, SnapStart $0.0000015046 per GB-s cached and "
    "$0.0001397998 per GB restored (awsnegotiations.com, 2026, quoting the page). Not visible offline, "
    "used as published in the us-east-1 table (unchanged since arm64 pricing in 2021, to the author's "
    "knowledge): provisioned concurrency $0.0000041667 (x86_64) / $0.0000033334 (arm64) per GB-s and its "
    "duration $0.0000097222 / $0.0000077778 per GB-s; they give the 60% break-even utilisation that "
    "third-party guides quote (finops.com.py). SnapStart is priced the same on both architectures here "
    "(an assumption). Check the page before quoting a bill."
)


@dataclass(frozen=True)
class Prices:
    """One architecture's prices, USD."""

    architecture: str
    request: float
    """Per request."""
    duration: float
    """On-demand duration, per GB-second."""
    provisioned: float
    """Provisioned concurrency configured, per GB-second."""
    provisioned_duration: float
    """Duration of the requests provisioned environments serve, per GB-second."""
    snapstart_cache: float
    """SnapStart snapshot cache, per GB-second of memory while the version is active (3 hours minimum)."""
    snapstart_restore: float
    """SnapStart restore, per GB of memory restored."""

    @property
    def break_even_utilization(self) -> float:
        """Above this busy fraction a provisioned environment costs less than on-demand duration."""
        return self.provisioned / (self.duration - self.provisioned_duration)


PRICES: dict[str, Prices] = {
    "x86_64": Prices(
        architecture="x86_64",
        request=0.20 / 1e6,
        duration=0.0000166667,
        provisioned=0.0000041667,
        provisioned_duration=0.0000097222,
        snapstart_cache=0.0000015046,
        snapstart_restore=0.0001397998,
    ),
    "arm64": Prices(
        architecture="arm64",
        request=0.20 / 1e6,
        duration=0.0000133334,
        provisioned=0.0000033334,
        provisioned_duration=0.0000077778,
        snapstart_cache=0.0000015046,
        snapstart_restore=0.0001397998,
    ),
}
ARCHITECTURES = tuple(PRICES)


@dataclass(frozen=True)
class Usage:
    """What one policy consumed in the simulated week, in the units AWS bills."""

    requests: int
    on_demand_gb_s: float
    """Run time of the requests served by on-demand environments x memory."""
    provisioned_served_gb_s: float
    """Run time of the requests served by provisioned environments x memory."""
    provisioned_gb_s: float
    """Provisioned concurrency configured x memory x time."""
    init_gb_s: float = 0.0
    """INIT phases of on-demand cold starts x memory (billed as on-demand duration)."""
    provisioned_init_gb_s: float = 0.0
    """INIT phases of newly provisioned environments x memory (at the provisioned duration rate)."""
    restore_gb_s: float = 0.0
    """SnapStart billed restore duration x memory (at the on-demand rate)."""
    restored_gb: float = 0.0
    """SnapStart: restores x memory."""
    cached_gb_s: float = 0.0
    """SnapStart: memory x time each active version's snapshot is cached."""


@dataclass(frozen=True)
class Bill:
    """A week's Lambda bill, by part (USD)."""

    requests: float
    duration_on_demand: float
    duration_provisioned: float
    provisioned_concurrency: float
    init_and_restore: float
    """Billed INIT (on-demand cold starts and newly provisioned environments) and SnapStart restore duration."""
    snapstart_restores: float
    snapstart_cache: float

    @property
    def total(self) -> float:
        return (
            self.requests
            + self.duration_on_demand
            + self.duration_provisioned
            + self.provisioned_concurrency
            + self.init_and_restore
            + self.snapstart_restores
            + self.snapstart_cache
        )

    def to_json(self) -> dict[str, float]:
        return {**{k: round(v, 4) for k, v in asdict(self).items()}, "total": round(self.total, 4)}


PARTS = (
    ("requests", "requests"),
    ("duration_on_demand", "duration OD"),
    ("duration_provisioned", "duration PC"),
    ("provisioned_concurrency", "PC"),
    ("init_and_restore", "init/restore"),
    ("snapstart_restores", "SS restores"),
    ("snapstart_cache", "SS cache"),
)
"""Bill fields and their short column titles, in print order."""


def bill(usage: Usage, prices: Prices) -> Bill:
    return Bill(
        requests=usage.requests * prices.request,
        duration_on_demand=usage.on_demand_gb_s * prices.duration,
        duration_provisioned=usage.provisioned_served_gb_s * prices.provisioned_duration,
        provisioned_concurrency=usage.provisioned_gb_s * prices.provisioned,
        init_and_restore=(usage.init_gb_s + usage.restore_gb_s) * prices.duration
        + usage.provisioned_init_gb_s * prices.provisioned_duration,
        snapstart_restores=usage.restored_gb * prices.snapstart_restore,
        snapstart_cache=usage.cached_gb_s * prices.snapstart_cache,
    )


def bills(usage: Usage) -> dict[str, Bill]:
    """The bill on every architecture of the table."""
    return {arch: bill(usage, prices) for arch, prices in PRICES.items()}


def price_table() -> list[str]:
    """The table as printed by the bench (one line per part)."""
    x86, arm = PRICES["x86_64"], PRICES["arm64"]
    rows = [
        ("requests, per 1M", x86.request * 1e6, arm.request * 1e6),
        ("duration on-demand, per GB-s", x86.duration, arm.duration),
        ("provisioned concurrency, per GB-s", x86.provisioned, arm.provisioned),
        ("duration on provisioned, per GB-s", x86.provisioned_duration, arm.provisioned_duration),
        ("SnapStart cache, per GB-s", x86.snapstart_cache, arm.snapstart_cache),
        ("SnapStart restore, per GB", x86.snapstart_restore, arm.snapstart_restore),
    ]
    lines = [f"prices: AWS Lambda {REGION}, USD, read {PRICES_READ} ({SOURCES['pricing']})",
             f"   {'':<36} {'x86_64':>14} {'arm64':>14}"]
    lines += [f"   {name:<36} {a:>14.10g} {b:>14.10g}" for name, a, b in rows]
    lines.append(
        f"   provisioned concurrency is cheaper than on-demand above {x86.break_even_utilization:.1%} (x86_64) / "
        f"{arm.break_even_utilization:.1%} (arm64) utilisation"
    )
    return lines


def to_json() -> dict[str, Any]:
    return {
        "region": REGION,
        "read": PRICES_READ,
        "sources": SOURCES,
        "provenance": PROVENANCE,
        "prices": {arch: asdict(p) for arch, p in PRICES.items()},
        "break_even_utilization": {arch: p.break_even_utilization for arch, p in PRICES.items()},
    }
