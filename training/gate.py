"""The quality gate between a retrained model and the live one: publish only what is not worse.

A new model passes when all of these hold (``decide``):

- **verified**: its bundle passes ``Bundle.verify`` (every file's size and sha256, every array's shape);
- **parity**: the exported numpy towers agree with the trained Keras towers
  (``parity_max_abs_diff`` at most ``parity_tolerance``): what is served is what was trained;
- **quality**, for each of ``GATED_METRICS`` (the served path's Recall@10 and NDCG@10, both models scored
  on the same newest split and the same catalog): ``new >= live - tolerance``. Equal within the
  tolerance passes; with no live model yet there is nothing to compare, and the first model passes.

``force`` publishes a model that fails only the quality checks (they are still reported); a bundle that
is not verified or fails parity never passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

GATED_METRICS = ("recall@10", "ndcg@10")


@dataclass(frozen=True)
class ModelFigures:
    """One model's served-path metrics on the gate's split (95% confidence half-widths over ``users``)."""

    model_version: str
    metrics: Mapping[str, float]
    ci95: Mapping[str, float] = field(default_factory=dict)
    users: int = 0


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    blocking: bool = True
    """A failed non-blocking check (a quality check under ``force``) is reported but does not hold the model back."""


@dataclass(frozen=True)
class GateDecision:
    publish: bool
    checks: tuple[Check, ...]
    reason: str
    """One sentence: why the model is published or held back."""

    def to_dict(self) -> dict[str, Any]:
        return {"publish": self.publish, "reason": self.reason, "checks": [asdict(c) for c in self.checks]}


def decide(
    new: ModelFigures,
    live: ModelFigures | None,
    *,
    tolerance: float,
    parity_diff: float | None,
    parity_tolerance: float,
    verify_error: str | None = None,
    force: bool = False,
) -> GateDecision:
    """The gate's decision for ``new`` against ``live`` (None: no model is live yet)."""
    if tolerance < 0 or parity_tolerance < 0:
        raise ValueError("tolerances must be 0 or more")
    checks = [
        Check("verified", verify_error is None,
              "every file matches the manifest (size, sha256, shapes)" if verify_error is None else verify_error),
    ]
    if parity_diff is None:
        checks.append(Check("parity", False, "the training recorded no parity check (parity_max_abs_diff)"))
    else:
        ok = parity_diff <= parity_tolerance
        checks.append(Check("parity", ok, f"numpy vs Keras towers: largest absolute difference {parity_diff:.2e} "
                                          f"{'<=' if ok else '>'} {parity_tolerance:.0e}"))
    if live is None:
        checks.append(Check("quality", True, "no live model yet: nothing to compare with, the first one is published"))
    else:
        for metric in GATED_METRICS:
            ours, theirs = float(new.metrics[metric]), float(live.metrics[metric])
            ok = ours >= theirs - tolerance
            delta = ours - theirs
            detail = (f"{ours:.4f} vs live {theirs:.4f} ({delta:+.4f}; "
                      f"{'within' if ok else 'beyond'} the tolerance of {tolerance:.4f})")
            checks.append(Check(metric, ok, detail, blocking=not force))
    blocking = [c for c in checks if not c.passed and c.blocking]
    waived = [c for c in checks if not c.passed and not c.blocking]
    if blocking:
        reason = "held back: " + "; ".join(f"{c.name}: {c.detail}" for c in blocking)
    elif waived:
        reason = "published by force despite: " + "; ".join(f"{c.name}: {c.detail}" for c in waived)
    elif live is None:
        reason = "published: the first model (no live model to compare with), verified and at parity"
    else:
        reason = (f"published: not worse than the live model {live.model_version} by more than {tolerance:.4f} on "
                  f"{' and '.join(GATED_METRICS)}, verified and at parity")
    return GateDecision(not blocking, tuple(checks), reason)
