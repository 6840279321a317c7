"""Catalog deltas: the CSV and JSON formats, and rejection of malformed rows (each one named)."""

from __future__ import annotations

import json

import pytest

from core.features import Movie
from indexer.delta import parse_delta, parse_delta_csv, parse_delta_json, read_delta
from indexer.errors import DeltaError


def test_csv_in_movielens_columns_with_optional_popularity_and_action():
    delta = parse_delta_csv(
        "movieId,title,genres,popularity,action\n"
        "200001,New Movie (2024),Comedy|Drama,12,\n"
        "1,Toy Story (1995),Adventure|Animation,,upsert\n"
        "42,,,,delete\n"
        ",,,,\n"  # a blank row is skipped
        "7,Untitled,(no genres listed),0.5,\n",
        "d.csv",
    )
    assert [u.movie for u in delta.upserts] == [
        Movie(200001, "New Movie", 2024, ("Comedy", "Drama"), 12.0),
        Movie(1, "Toy Story", 1995, ("Adventure", "Animation"), 0.0),
        Movie(7, "Untitled", None, (), 0.5),
    ]
    assert [u.popularity_given for u in delta.upserts] == [True, False, True]
    assert delta.deletes == (42,)
    assert delta.size == 4


def test_plain_movielens_movies_csv_is_a_valid_delta():
    delta = parse_delta_csv('movieId,title,genres\n3,"Grumpier Old Men, The (1995)",Comedy|Romance\n')
    assert delta.upserts[0].movie == Movie(3, "Grumpier Old Men, The", 1995, ("Comedy", "Romance"), 0.0)


def test_json_delta():
    delta = parse_delta_json(json.dumps({
        "upsert": [{"movieId": 5, "title": "Five (2001)", "genres": ["Drama", "War"], "popularity": 3}],
        "delete": [9, 10],
    }))
    assert delta.upserts[0].movie == Movie(5, "Five", 2001, ("Drama", "War"), 3.0)
    assert delta.deletes == (9, 10)


def test_every_bad_csv_row_is_named():
    text = (
        "movieId,title,genres,popularity,action\n"
        "1,Fine (2000),Drama,,\n"
        "x,Bad id,Drama,,\n"
        "2,,Drama,,\n"
        "3,Nan pop (2001),Drama,nan,\n"
        "1,Duplicate (2000),Drama,,\n"
        "4,Whatever,Drama,,remove\n"
        "5,Too,many,1,,extra\n"
        "0,Zero,Drama,,\n"
        "99999999999,Huge,Drama,,\n"
    )
    with pytest.raises(DeltaError) as caught:
        parse_delta_csv(text, "d.csv")
    problems = caught.value.problems
    assert problems == [
        "line 3: movieId 'x' is not an integer",
        "line 4 (movieId 2): title is empty",
        "line 5 (movieId 3): popularity 'nan' must be a finite number >= 0",
        "line 6: movieId 1 also appears at line 2",
        "line 7 (movieId 4): action 'remove' must be 'upsert' or 'delete'",
        "line 8: 6 fields, the header has 5",
        "line 9: movieId 0 is outside 1..2147483647",
        "line 10: movieId 99999999999 is outside 1..2147483647",
    ]
    assert "d.csv: rejected, nothing was written (8 problem(s))" in str(caught.value)


def test_bad_csv_header():
    with pytest.raises(DeltaError) as caught:
        parse_delta_csv("id,title,genre\n1,a,b\n")
    assert caught.value.problems == [
        "line 1: unknown column 'id' (allowed: movieId, title, genres, popularity, action)",
        "line 1: unknown column 'genre' (allowed: movieId, title, genres, popularity, action)",
        "line 1: no 'movieId' column (the header is movieId,title,genres[,popularity][,action])",
    ]
    with pytest.raises(DeltaError, match="needs the columns 'title' and 'genres'"):
        parse_delta_csv("movieId\n1\n")
    with pytest.raises(DeltaError, match="no movies to upsert and no ids to delete"):
        parse_delta_csv("movieId,title,genres\n")


def test_every_bad_json_entry_is_named():
    raw = {
        "upsert": [
            {"movieId": 1, "title": "Ok (1999)", "genres": "Drama"},
            {"movieId": 2, "title": "", "genres": "Drama"},
            {"movieId": 3, "title": "G", "genres": 7},
            {"movieId": 4, "title": "K", "genres": "Drama", "colour": "red"},
            "not an object",
            {"movieId": True, "title": "Bool id", "genres": ""},
            {"movieId": 5, "title": "Pop", "genres": "", "popularity": -1},
        ],
        "delete": [1, "x", 6.5],
        "extra": 1,
    }
    with pytest.raises(DeltaError) as caught:
        parse_delta_json(json.dumps(raw), "d.json")
    assert caught.value.problems == [
        "unknown key 'extra' (allowed: 'upsert', 'delete')",
        "upsert[1] (movieId 2): title is empty",
        "upsert[2] (movieId 3): genres 7 must be a '|'-separated string or a list of strings",
        "upsert[3] (movieId 4): unknown key(s) 'colour'",
        "upsert[4]: must be an object with movieId, title, genres and optional popularity",
        "upsert[5]: movieId True is not an integer",
        "upsert[6] (movieId 5): popularity -1 must be a finite number >= 0",
        "delete[0]: movieId 1 also appears at upsert[0]",
        "delete[1]: movieId 'x' is not an integer",
        "delete[2]: movieId 6.5 is not an integer",
    ]


def test_json_shape_errors():
    with pytest.raises(DeltaError, match="not valid JSON"):
        parse_delta_json("{", "d.json")
    with pytest.raises(DeltaError, match="must be an object"):
        parse_delta_json("[]", "d.json")
    with pytest.raises(DeltaError) as caught:
        parse_delta_json('{"upsert": {}, "delete": 3}', "d.json")
    assert caught.value.problems == ["'upsert' must be a list of movies", "'delete' must be a list of movie ids"]


def test_format_is_chosen_by_extension(tmp_path):
    assert parse_delta(b'{"delete": [1]}', "x.JSON").deletes == (1,)
    assert parse_delta("movieId,action\n1,delete\n", "x.csv").deletes == (1,)
    with pytest.raises(DeltaError, match=r"unknown delta format '\.txt'"):
        parse_delta("", "x.txt")
    with pytest.raises(DeltaError, match="not UTF-8"):
        parse_delta(b"\xff\xfe", "x.csv")
    with pytest.raises(DeltaError, match="cannot read it"):
        read_delta(tmp_path / "missing.csv")
    path = tmp_path / "ok.csv"
    path.write_text("\ufeffmovieId,title,genres\n8,Eight (2008),Drama\n", encoding="utf-8")  # a BOM is fine
    assert read_delta(path).upserts[0].movie.movie_id == 8


def test_a_popularity_too_large_for_a_float_is_named_not_a_crash():
    text = '{"upsert": [{"movieId": 1, "title": "Big (1988)", "genres": "Comedy", "popularity": 1' + "0" * 400 + "}]}"
    with pytest.raises(DeltaError) as caught:
        parse_delta_json(text, "d.json")
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("upsert[0] (movieId 1): popularity 1000")
