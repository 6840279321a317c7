"""``explain: true`` on POST /recommendations: each item names the liked history movies most similar
to it (cosine of the item vectors, popularity left out), checked against a brute-force computation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from core.aws import opensearch_client
from core.bundle import Bundle
from recommender import composition
from recommender.adapters.memory_cache import MemoryCache
from recommender.adapters.numpy_index import NumpyIndex
from recommender.adapters.opensearch_index import OpenSearchIndex
from recommender.answers import HistoryItem
from recommender.explain import EXPLAIN_PER_ITEM, LIKED_MIN_RATING
from recommender.handler import lambda_handler
from recommender.service import RecommendationService
from tests.recommender.conftest import load_event
from tests.support.opensearch_fixtures import create_movie_index

Invoke = Callable[[dict[str, Any]], dict[str, Any]]

HISTORY = [
    {"movie_id": 5, "rating": 5.0}, {"movie_id": 17, "rating": 4.0}, {"movie_id": 40},  # liked (unrated counts)
    {"movie_id": 63, "rating": 2.5}, {"movie_id": 88, "rating": 0.5},  # not liked: never named
]
LIKED = [5, 17, 40]


def cosines(bundle: Bundle, item: int, history: list[int]) -> dict[int, float]:
    row = {m.movie_id: i for i, m in enumerate(bundle.catalog)}
    vectors = bundle.movie_vectors[:, :-1]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return {h: float(unit[row[item]] @ unit[row[h]]) for h in history}


def expected_because(bundle: Bundle, item: int) -> list[tuple[int, float]]:
    sims = cosines(bundle, item, LIKED)
    ranked = sorted(((h, s) for h, s in sims.items() if s > 0 and h != item), key=lambda hs: -hs[1])
    return ranked[:EXPLAIN_PER_ITEM]


def test_each_item_names_the_most_similar_liked_movies(invoke: Invoke, bundle: Bundle) -> None:
    response = invoke(load_event("post_recommendations", body={"history": HISTORY, "k": 20, "explain": True}))
    assert response["statusCode"] == 200
    items = response["json"]["items"]
    assert len(items) == 20 and response["json"]["strategy"] == "personalized"
    named = 0
    for item in items:
        because = item["because"]
        want = expected_because(bundle, item["movie_id"])
        assert [b["movie_id"] for b in because] == [h for h, _ in want]
        for got, (_, similarity) in zip(because, want, strict=True):
            assert abs(got["similarity"] - similarity) < 1e-5
        named += len(because)
    assert named > 0
    assert LIKED_MIN_RATING == 3.0


def test_without_explain_items_carry_no_because(invoke: Invoke) -> None:
    response = invoke(load_event("post_recommendations", body={"history": HISTORY, "k": 5}))
    assert all(set(item) == {"movie_id", "title", "year", "genres", "score"} for item in response["json"]["items"])


def test_nothing_liked_means_empty_reasons(invoke: Invoke) -> None:
    for history in ([], [{"movie_id": 63, "rating": 1.0}], [{"movie_id": 999999}]):
        body = invoke(load_event("post_recommendations", body={"history": history, "k": 3, "explain": True}))["json"]
        assert [item["because"] for item in body["items"]] == [[], [], []]


def test_an_item_is_never_its_own_reason(bundle: Bundle) -> None:
    index = NumpyIndex.from_arrays(bundle.catalog, bundle.movie_vectors, bundle.model_version)
    service = RecommendationService(index=index, cache=MemoryCache(100), model_version=bundle.model_version,
                                    user_tower=bundle.user_tower)
    query = bundle.movie_vectors[4].copy()
    query[-1] = 0.0  # popularity left out: movie 5 finds itself first
    hits = index.search(query, 3)
    assert hits[0].movie.movie_id == 5
    reasons = service.explain([HistoryItem(5, 5.0), HistoryItem(17, 5.0)], hits)
    assert all(movie_id != item for item, why in reasons.items() for movie_id, _ in why)


def test_the_index_down_still_answers_without_reasons(
    configure_service: Callable[..., composition.Container], unreachable_url: str
) -> None:
    configure_service(opensearch_url=unreachable_url, opensearch_max_retries=0)
    event = load_event("post_recommendations", body={"history": HISTORY, "k": 4, "explain": True})
    response = lambda_handler(event, None)
    body = json.loads(response["body"])
    assert response["statusCode"] == 200 and body["fallback"] == "popular"
    assert [item["because"] for item in body["items"]] == [[], [], [], []]


@pytest.mark.opensearch
def test_opensearch_gives_the_same_reasons(opensearch_url: str, unique_name: Callable[[str], str], bundle: Bundle
                                           ) -> None:
    # one multi-get of the history's and the items' vectors, the same answer as the embedded index
    alias = unique_name("movies")
    create_movie_index(opensearch_url, unique_name("movies-explain"), alias, bundle.catalog, bundle.movie_vectors,
                       model_version=bundle.model_version)
    numpy_index = NumpyIndex.from_arrays(bundle.catalog, bundle.movie_vectors, bundle.model_version)
    hits = numpy_index.search(bundle.user_tower.encode([(5, 5.0), (17, 4.0)]), 8, exclude_ids={5, 17})
    history = [HistoryItem(int(h["movie_id"]), h.get("rating")) for h in HISTORY]  # type: ignore[arg-type]
    answers = []
    for index in (numpy_index, OpenSearchIndex(opensearch_client(opensearch_url, timeout_seconds=10), alias)):
        service = RecommendationService(index=index, cache=MemoryCache(100), model_version=bundle.model_version,
                                        user_tower=bundle.user_tower)
        answers.append({k: [(i, round(s, 5)) for i, s in v] for k, v in service.explain(history, hits).items()})
    assert answers[0] == answers[1]
    assert any(answers[0].values())

