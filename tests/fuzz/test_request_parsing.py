"""Property tests of request parsing, through the Lambda handler on the embedded defaults.

Whatever a client sends, the answer is never a 5xx: a valid request gets its ranked movies, with
the filters and ``exclude_seen`` respected; anything else is a 4xx JSON body naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.features import Movie
from recommender.settings import MAX_HISTORY_ITEMS, MAX_K
from recs.local.synthetic import GENRES
from tests.fuzz.conftest import N_MOVIES

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MAX_ID = 2**31 - 1

# -- strategies ------------------------------------------------------------------------------------

movie_ids = st.one_of(st.integers(1, N_MOVIES + 20), st.integers(1, MAX_ID))  # mostly catalog ids, some unknown
ratings = st.none() | st.sampled_from([x / 2 for x in range(1, 11)]) | st.floats(0.5, 5.0)
timestamps = st.none() | st.integers(0, 2_000_000_000)
years = st.integers(1800, 2200)


@st.composite
def history_entries(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {"movie_id": draw(movie_ids)}
    rating = draw(ratings)
    if rating is not None or draw(st.booleans()):
        entry["rating"] = rating
    timestamp = draw(timestamps)
    if timestamp is not None or draw(st.booleans()):
        entry["timestamp"] = timestamp
    return entry


@st.composite
def filter_objects(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["genres_any"] = draw(st.lists(st.sampled_from(GENRES) | st.text(min_size=1, max_size=8), max_size=4))
    if draw(st.booleans()):
        out["genres_none"] = draw(st.lists(st.sampled_from(GENRES), max_size=4))
    low, high = sorted(draw(st.lists(years, min_size=2, max_size=2)))
    if draw(st.booleans()):
        out["year_min"] = low
    if draw(st.booleans()):
        out["year_max"] = high
    return out


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if draw(st.booleans()):
        body["history"] = draw(st.lists(history_entries(), max_size=40))
    if draw(st.booleans()):
        body["k"] = draw(st.integers(1, MAX_K))
    if draw(st.booleans()):
        body["exclude_seen"] = draw(st.booleans())
    if draw(st.booleans()):
        body["filters"] = draw(filter_objects())
    return body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)


# -- helpers ---------------------------------------------------------------------------------------

def recommend(handler: Any, body: Any, raw: bool = False) -> tuple[int, Any]:
    status, answer, _ = handler("POST", "/recommendations", body if raw else json.dumps(body))
    return status, answer


def assert_error_body(status: int, answer: Any) -> None:
    assert 400 <= status < 500, (status, answer)
    assert isinstance(answer, dict) and isinstance(answer.get("error"), str) and answer.get("message")
    for error in answer["errors"]:
        assert set(error) == {"field", "location", "reason"} and error["field"] and error["reason"]


def passes(movie: dict[str, Any], filters: dict[str, Any]) -> bool:
    return _filters_of(filters).matches(Movie(movie["movie_id"], movie["title"], movie["year"],
                                              tuple(movie["genres"])))


def _filters_of(raw: dict[str, Any]) -> Any:
    from recommender.ports import Filters

    return Filters(tuple(raw.get("genres_any", ())), tuple(raw.get("genres_none", ())), raw.get("year_min"),
                   raw.get("year_max"))


# -- properties ------------------------------------------------------------------------------------

@FUZZ
@given(body=valid_requests())
def test_a_valid_request_is_answered_by_the_rules(handler: Any, body: dict[str, Any]) -> None:
    status, answer = recommend(handler, body)
    assert status == 200, answer
    k = body.get("k", 10)
    history_ids = {h["movie_id"] for h in body.get("history", [])}
    filters = body.get("filters", {})
    assert len(answer["items"]) <= k
    ids = [item["movie_id"] for item in answer["items"]]
    assert len(set(ids)) == len(ids)
    assert all(passes(item, filters) for item in answer["items"])
    known = {i for i in history_ids if i <= N_MOVIES}
    assert set(answer["ignored_movie_ids"]) == history_ids - known
    if body.get("exclude_seen", True):
        assert not set(ids) & history_ids
    if not filters:  # every movie qualifies: the list is full
        excluded = len(known) if body.get("exclude_seen", True) else 0
        assert len(ids) == min(k, N_MOVIES - excluded)
    assert answer["strategy"] == ("personalized" if known else "popular")


@FUZZ
@given(body=valid_requests(), data=st.data())
def test_integers_written_with_a_zero_fraction_mean_the_same(handler: Any, body: dict[str, Any],
                                                             data: st.DataObject) -> None:
    # JSON Schema's "integer" (the served document's type) accepts 5.0: the service must too
    floated = json.loads(json.dumps(body))
    for entry in floated.get("history", []):
        for name in ("movie_id", "timestamp"):
            if entry.get(name) is not None and data.draw(st.booleans()):
                entry[name] = float(entry[name])
    for name in ("year_min", "year_max"):
        if name in floated.get("filters", {}) and data.draw(st.booleans()):
            floated["filters"][name] = float(floated["filters"][name])
    floated["k"] = float(body.get("k", 10))
    status_int, as_int = recommend(handler, body)
    status_float, as_float = recommend(handler, floated)
    assert status_int == status_float == 200, (as_int, as_float)
    assert as_float["items"] == as_int["items"]


@FUZZ
@given(body=valid_requests(), data=st.data())
def test_a_fraction_where_an_integer_belongs_is_named(handler: Any, body: dict[str, Any],
                                                      data: st.DataObject) -> None:
    candidates = ["k"] + [f"history[{i}].movie_id" for i in range(len(body.get("history", [])))]
    field = data.draw(st.sampled_from(candidates))
    value = data.draw(st.integers(1, 99)) + 0.5
    if field == "k":
        body["k"] = value
    else:
        body["history"][int(field[8:field.index("]")])]["movie_id"] = value
    status, answer = recommend(handler, body)
    assert_error_body(status, answer)
    assert status == 422
    assert field in {e["field"] for e in answer["errors"]}


WRONG_TYPES = st.sampled_from(["5", "yes", [], {}, True, None])
FIELDS = ("k", "exclude_seen", "history", "filters", "filters.genres_any", "filters.year_min",
          "history[0].movie_id", "history[0].rating", "history[0].timestamp")


@FUZZ
@given(body=valid_requests(), field=st.sampled_from(FIELDS), wrong=WRONG_TYPES)
def test_a_value_of_the_wrong_type_is_a_422_naming_its_field(handler: Any, body: dict[str, Any], field: str,
                                                             wrong: Any) -> None:
    body.setdefault("history", [{"movie_id": 1}])
    if not body["history"]:
        body["history"] = [{"movie_id": 1}]
    body.setdefault("filters", {})
    optional = {"filters.year_min", "history[0].rating", "history[0].timestamp"}
    assume(not (wrong is None and field in optional))  # null is a valid "not given" there
    assume(not (isinstance(wrong, bool) and field == "exclude_seen"))
    assume(not (wrong == [] and field in ("history", "filters.genres_any")))
    assume(not (wrong == {} and field == "filters"))
    if field.startswith("history[0]."):
        body["history"][0][field.split(".")[1]] = wrong
    elif field.startswith("filters."):
        body["filters"][field.split(".")[1]] = wrong
    else:
        body[field] = wrong
    status, answer = recommend(handler, body)
    assert status == 422, answer
    assert_error_body(status, answer)
    named = {e["field"] for e in answer["errors"]}
    assert any(n == field or n.startswith(field + ".") or n.startswith(field + "[") for n in named), (field, named)


@FUZZ
@given(body=valid_requests(), where=st.sampled_from(["top", "filters", "history"]),
       key=st.text(min_size=1, max_size=10))
def test_an_unknown_field_is_a_422_naming_it(handler: Any, body: dict[str, Any], where: str, key: str) -> None:
    known = {"top": {"history", "k", "exclude_seen", "filters"},
             "filters": {"genres_any", "genres_none", "year_min", "year_max"},
             "history": {"movie_id", "rating", "timestamp"}}
    assume(key not in known[where])
    if where == "top":
        body[key] = 1
        expected = key
    elif where == "filters":
        body.setdefault("filters", {})[key] = 1
        expected = f"filters.{key}"
    else:
        body["history"] = [*body.get("history", []), {"movie_id": 1, key: 1}]
        expected = f"history[{len(body['history']) - 1}].{key}"
    status, answer = recommend(handler, body)
    assert status == 422
    assert expected in {e["field"] for e in answer["errors"]}


@FUZZ
@given(body=json_values)
def test_any_json_body_gets_an_answer_or_a_4xx_never_a_5xx(handler: Any, body: Any) -> None:
    status, answer = recommend(handler, body)
    if status == 200:
        assert isinstance(body, dict) and isinstance(answer["items"], list)
    else:
        assert_error_body(status, answer)
        assert status in (400, 422)


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=300))
def test_any_bytes_get_a_4xx_never_a_5xx(handler: Any, raw: bytes | str) -> None:
    try:
        json.loads(raw)
        assume(False)  # valid JSON is the previous test's business
    except (ValueError, UnicodeDecodeError):
        pass
    status, answer = recommend(handler, raw, raw=True)
    assert_error_body(status, answer)
    assert status in (400, 422)


MEDIA_TYPE_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@FUZZ
@given(content_type=st.text(MEDIA_TYPE_CHARS, min_size=1, max_size=40).filter(lambda t: "json" not in t.lower()),
       parameters=st.sampled_from(["", "; charset=utf-8", ";q=1"]))
def test_a_body_that_is_not_json_by_its_content_type_is_a_415(handler: Any, content_type: str,
                                                              parameters: str) -> None:
    assume(content_type.split(";")[0].strip())
    content_type += parameters
    status, answer, _ = handler("POST", "/recommendations", "{}", headers={"Content-Type": content_type})
    assert_error_body(status, answer)
    assert status == 415


@FUZZ
@given(path_id=st.text(max_size=12), k=st.none() | st.text(max_size=6), extra=st.booleans())
def test_path_and_query_parameters_never_cause_a_5xx(handler: Any, path_id: str, k: str | None,
                                                     extra: bool) -> None:
    from urllib.parse import quote, urlencode

    query = {} if k is None else {"k": k}
    if extra:
        query["x"] = "1"
    target = f"/movies/{quote(path_id, safe='')}/similar" + (f"?{urlencode(query)}" if query else "")
    status, answer, _ = handler("GET", target)
    if status == 200:
        assert not extra
        assert 1 <= len(answer["items"]) <= 100
        assert answer["movie"]["movie_id"] not in {i["movie_id"] for i in answer["items"]}
    else:
        assert_error_body(status, answer)
        assert status in (404, 422)


def test_the_longest_history_is_accepted_and_one_more_is_not(handler: Any) -> None:
    history = [{"movie_id": 1 + i % N_MOVIES} for i in range(MAX_HISTORY_ITEMS)]
    assert recommend(handler, {"history": history})[0] == 200
    status, answer = recommend(handler, {"history": [*history, {"movie_id": 1}]})
    assert status == 422 and answer["errors"][0]["field"] == "history"


def test_a_json_array_is_not_a_request_body(handler: Any) -> None:
    # Powertools validates a list body's first element as the model; the handler refuses arrays first
    for body in ([{"k": 3}], [{"k": 3}, {"k": 5}], [{}], []):
        status, answer = recommend(handler, body)
        assert status == 422, (body, answer)
        assert answer["errors"][0]["field"] == "(body)" and "array" in answer["errors"][0]["reason"]
    status, answer, _ = handler("POST", "/health", "[1]")
    assert status == 405  # a wrong method stays a 405 whatever the body


def test_an_integral_float_is_an_integer_and_a_fraction_is_not(handler: Any) -> None:
    body = {"history": [{"movie_id": 3.0, "timestamp": 5.0}], "k": 4.0, "filters": {"year_min": 1950.0}}
    status, answer = recommend(handler, body)
    assert status == 200 and len(answer["items"]) == 4
    status, answer = recommend(handler, {**body, "k": 4.5})
    assert status == 422 and answer["errors"][0]["field"] == "k"
