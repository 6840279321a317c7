"""The quality gate: passes, holds back, equal within the tolerance, no live model yet, and the checks that never
give way (verification, parity), forced or not."""

from __future__ import annotations

import pytest

from training.gate import GATED_METRICS, ModelFigures, decide

TOLERANCE = 0.005
PARITY = dict(parity_diff=1.5e-7, parity_tolerance=1e-4)


def figures(version: str, recall: float, ndcg: float) -> ModelFigures:
    return ModelFigures(version, {"recall@10": recall, "ndcg@10": ndcg, "recall@100": 0.3, "ndcg@100": 0.2})


LIVE = figures("live", 0.140, 0.130)


def test_a_better_model_passes() -> None:
    decision = decide(figures("new", 0.150, 0.135), LIVE, tolerance=TOLERANCE, **PARITY)
    assert decision.publish and decision.reason.startswith("published: not worse than the live model live")
    assert [c.name for c in decision.checks] == ["verified", "parity", *GATED_METRICS]
    assert all(c.passed for c in decision.checks)


def test_a_worse_model_is_held_back_naming_the_metric() -> None:
    decision = decide(figures("new", 0.150, 0.120), LIVE, tolerance=TOLERANCE, **PARITY)
    assert not decision.publish
    assert decision.reason.startswith("held back: ndcg@10: 0.1200 vs live 0.1300 (-0.0100; beyond")
    assert "recall@10" not in decision.reason


@pytest.mark.parametrize("delta", [0.0, -0.005, -0.0049])
def test_equal_or_worse_within_the_tolerance_passes(delta: float) -> None:
    decision = decide(figures("new", 0.140 + delta, 0.130 + delta), LIVE, tolerance=TOLERANCE, **PARITY)
    assert decision.publish


def test_just_beyond_the_tolerance_is_held_back() -> None:
    assert not decide(figures("new", 0.1349, 0.130), LIVE, tolerance=TOLERANCE, **PARITY).publish


def test_no_live_model_yet_is_a_first_publish() -> None:
    decision = decide(figures("new", 0.01, 0.01), None, tolerance=TOLERANCE, **PARITY)
    assert decision.publish and "first model" in decision.reason
    assert [c.name for c in decision.checks] == ["verified", "parity", "quality"]


def test_an_unverified_bundle_or_a_parity_failure_is_never_published() -> None:
    good = figures("new", 0.2, 0.2)
    broken = decide(good, None, tolerance=TOLERANCE, verify_error="catalog.json: sha256 mismatch", **PARITY)
    assert not broken.publish and "catalog.json" in broken.reason
    drifted = decide(good, LIVE, tolerance=TOLERANCE, parity_diff=0.01, parity_tolerance=1e-4, force=True)
    assert not drifted.publish and drifted.reason.startswith("held back: parity")
    unknown = decide(good, LIVE, tolerance=TOLERANCE, parity_diff=None, parity_tolerance=1e-4)
    assert not unknown.publish


def test_force_publishes_a_worse_model_but_says_so() -> None:
    decision = decide(figures("new", 0.10, 0.10), LIVE, tolerance=TOLERANCE, force=True, **PARITY)
    assert decision.publish and decision.reason.startswith("published by force despite: recall@10")
    assert [c.passed for c in decision.checks if c.name in GATED_METRICS] == [False, False]


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError):
        decide(LIVE, LIVE, tolerance=-0.1, **PARITY)
