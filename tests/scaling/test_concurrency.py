"""Little's law, headroom and clamping on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from scaling.concurrency import clamp_capacity, littles_law, required_concurrency


@pytest.mark.parametrize(
    ("rate", "seconds", "headroom", "expected"),
    [
        (100.0, 0.25, 1.2, 30),  # 100 x 0.25 = 25 in flight, x 1.2 = 30 exactly (no rounding up past it)
        (10.0, 0.123, 1.1, 2),  # 1.353 -> 2
        (40.0, 0.05, 1.0, 2),  # 2.0 exactly
        (40.0, 0.051, 1.0, 3),  # 2.04 -> 3
        (0.0, 0.5, 1.5, 0),
        (1000.0, 1.0, 1.0, 1000),
    ],
)
def test_required_concurrency(rate, seconds, headroom, expected):
    assert required_concurrency(rate, seconds, headroom) == expected


def test_littles_law():
    assert littles_law(50.0, 0.2) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        littles_law(-1.0, 0.2)
    with pytest.raises(ValueError):
        required_concurrency(10.0, 0.1, 0.9)


@pytest.mark.parametrize(
    ("value", "floor", "maximum", "expected"),
    [
        (7.0, 1, 10, 7),
        (6.2, 1, 10, 7),
        (0.2, 1, 10, 1),
        (0.0, 0, 10, 0),
        (500.0, 1, 100, 100),
        (None, 2, 10, 2),
        (math.nan, 2, 10, 2),
        (math.inf, 2, 10, 2),
        (-5.0, 3, 10, 3),
    ],
)
def test_clamp_capacity(value, floor, maximum, expected):
    assert clamp_capacity(value, floor, maximum) == expected


def test_clamp_refuses_an_inverted_range():
    with pytest.raises(ValueError):
        clamp_capacity(1.0, 5, 4)
