"""Shared fixtures of the training tests."""

from __future__ import annotations

import pytest

from training.movielens import Dataset, load_movielens
from training.split import Split, chronological_split


@pytest.fixture(scope="module")
def movielens_sample() -> tuple[Dataset, Split]:
    """The bundled sample and its chronological split (loaded once per module that asks)."""
    data = load_movielens("data/ml-latest-small")
    return data, chronological_split(data.ratings)
