"""Catalog deltas: new or changed movies and removed ids, as CSV or JSON.

CSV (MovieLens ``movies.csv`` columns, plus two optional ones)::

    movieId,title,genres,popularity,action
    200001,New Movie (2024),Comedy|Drama,12,
    1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy,,
    42,,,,delete

``action`` is ``upsert`` (the default when empty) or ``delete`` (only ``movieId`` is read).
``popularity`` (a rating count, >= 0) may be left empty: a changed movie keeps the popularity it
has in the live index, a new one gets 0.

JSON::

    {"upsert": [{"movieId": 200001, "title": "New Movie (2024)", "genres": "Comedy|Drama",
                 "popularity": 12}],
     "delete": [42, 43]}

``genres`` is a ``|``-separated string (as in MovieLens) or a list. Parsing checks every row and
raises one ``DeltaError`` naming each bad row, so a malformed delta is rejected before anything
is written.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.features import Movie, parse_genres, split_title
from indexer.errors import DeltaError

MAX_MOVIE_ID = 2**31 - 1
"""``movie_id`` is an OpenSearch ``integer``."""
CSV_COLUMNS = ("movieId", "title", "genres", "popularity", "action")
JSON_ROW_KEYS = ("movieId", "title", "genres", "popularity")
ACTIONS = ("upsert", "delete")


@dataclass(frozen=True)
class DeltaMovie:
    """A new or changed movie; ``popularity_given`` is False when the delta left it empty."""

    movie: Movie
    popularity_given: bool


@dataclass(frozen=True)
class CatalogDelta:
    """A validated delta: movies to upsert and ids to delete (disjoint, no duplicates)."""

    source: str
    upserts: tuple[DeltaMovie, ...]
    deletes: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.upserts) + len(self.deletes)


def _movie_id(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"movieId {raw!r} is not an integer")
    if isinstance(raw, float):
        if not raw.is_integer():
            raise ValueError(f"movieId {raw!r} is not an integer")
        raw = int(raw)
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ValueError(f"movieId {raw!r} is not an integer") from None
    if not 1 <= value <= MAX_MOVIE_ID:
        raise ValueError(f"movieId {value} is outside 1..{MAX_MOVIE_ID}")
    return value


def _popularity(raw: Any) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise ValueError(f"popularity {raw!r} is not a number")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"popularity {raw!r} is not a number") from None
    except OverflowError:  # an integer beyond float's range
        raise ValueError(f"popularity {raw!r} must be a finite number >= 0") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"popularity {raw!r} must be a finite number >= 0")
    return value


def _movie(movie_id: int, title: Any, genres: Any, popularity: Any) -> DeltaMovie:
    problems = []
    if not isinstance(title, str) or not title.strip():
        problems.append("title is empty" if not title else f"title {title!r} is not text")
    if isinstance(genres, str):
        genre_tuple = parse_genres(genres)
    elif isinstance(genres, list) and all(isinstance(g, str) for g in genres):
        genre_tuple = parse_genres("|".join(genres))
    else:
        genre_tuple = ()
        problems.append(f"genres {genres!r} must be a '|'-separated string or a list of strings")
    try:
        pop = _popularity(popularity)
    except ValueError as exc:
        problems.append(str(exc))
        pop = None
    if problems:
        raise ValueError("; ".join(problems))
    name, year = split_title(str(title))
    if not name:
        raise ValueError(f"title {title!r} has no name before the year")
    movie = Movie(movie_id=movie_id, title=name, year=year, genres=genre_tuple, popularity=pop or 0.0)
    return DeltaMovie(movie, pop is not None)


class _Collector:
    """Collects rows and problems; checks duplicates across the whole delta."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []
        self.upserts: list[DeltaMovie] = []
        self.deletes: list[int] = []
        self.seen: dict[int, str] = {}

    def claim(self, movie_id: int, where: str) -> bool:
        first = self.seen.get(movie_id)
        if first is not None:
            self.problems.append(f"{where}: movieId {movie_id} also appears at {first}")
            return False
        self.seen[movie_id] = where
        return True

    def finish(self) -> CatalogDelta:
        if not self.problems and not self.upserts and not self.deletes:
            self.problems.append("the delta has no movies to upsert and no ids to delete")
        if self.problems:
            raise DeltaError(self.source, self.problems)
        return CatalogDelta(self.source, tuple(self.upserts), tuple(self.deletes))


def parse_delta_csv(text: str, source: str = "delta.csv") -> CatalogDelta:
    """Parse and validate a CSV delta; raises ``DeltaError`` naming every bad line."""
    out = _Collector(source)
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = reader.fieldnames or []
    problems = [f"line 1: unknown column {c!r} (allowed: {', '.join(CSV_COLUMNS)})" for c in header
                if c not in CSV_COLUMNS]
    if "movieId" not in header:
        problems.append("line 1: no 'movieId' column (the header is movieId,title,genres[,popularity][,action])")
    if problems:
        raise DeltaError(source, problems)
    for row in reader:
        line = reader.line_num
        where = f"line {line}"
        if None in row:  # more fields than the header
            extra = len(row[None])  # type: ignore[index,unused-ignore]
            out.problems.append(f"{where}: {len(header) + extra} fields, the header has {len(header)}")
            continue
        if all(not (v or "").strip() for v in row.values()):
            continue  # blank line
        try:
            movie_id = _movie_id(row.get("movieId"))
        except ValueError as exc:
            out.problems.append(f"{where}: {exc}")
            continue
        where = f"line {line} (movieId {movie_id})"
        action = (row.get("action") or "").strip().lower() or "upsert"
        if action not in ACTIONS:
            out.problems.append(f"{where}: action {row.get('action')!r} must be 'upsert' or 'delete'")
            continue
        if not out.claim(movie_id, f"line {line}"):
            continue
        if action == "delete":
            out.deletes.append(movie_id)
            continue
        if "title" not in header or "genres" not in header:
            out.problems.append(f"{where}: an upsert needs the columns 'title' and 'genres'")
            continue
        try:
            out.upserts.append(_movie(movie_id, row.get("title") or "", row.get("genres") or "", row.get("popularity")))
        except ValueError as exc:
            out.problems.append(f"{where}: {exc}")
    return out.finish()


def parse_delta_json(text: str, source: str = "delta.json") -> CatalogDelta:
    """Parse and validate a JSON delta; raises ``DeltaError`` naming every bad entry."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise DeltaError(source, [f"not valid JSON ({exc})"]) from exc
    if not isinstance(raw, dict):
        raise DeltaError(source, ['the delta must be an object {"upsert": [...], "delete": [...]}'])
    out = _Collector(source)
    unknown = [k for k in raw if k not in ("upsert", "delete")]
    out.problems += [f"unknown key {k!r} (allowed: 'upsert', 'delete')" for k in unknown]
    upserts = raw.get("upsert", [])
    deletes = raw.get("delete", [])
    if not isinstance(upserts, list):
        out.problems.append("'upsert' must be a list of movies")
        upserts = []
    if not isinstance(deletes, list):
        out.problems.append("'delete' must be a list of movie ids")
        deletes = []
    for i, row in enumerate(upserts):
        where = f"upsert[{i}]"
        if not isinstance(row, Mapping):
            out.problems.append(f"{where}: must be an object with movieId, title, genres and optional popularity")
            continue
        try:
            movie_id = _movie_id(row.get("movieId"))
        except ValueError as exc:
            out.problems.append(f"{where}: {exc}")
            continue
        bad_keys = [k for k in row if k not in JSON_ROW_KEYS]
        if bad_keys:
            out.problems.append(f"{where} (movieId {movie_id}): unknown key(s) {', '.join(map(repr, bad_keys))}")
            continue
        if not out.claim(movie_id, where):
            continue
        try:
            out.upserts.append(_movie(movie_id, row.get("title"), row.get("genres", ""), row.get("popularity")))
        except ValueError as exc:
            out.problems.append(f"{where} (movieId {movie_id}): {exc}")
    for i, value in enumerate(deletes):
        where = f"delete[{i}]"
        try:
            movie_id = _movie_id(value)
        except ValueError as exc:
            out.problems.append(f"{where}: {exc}")
            continue
        if out.claim(movie_id, where):
            out.deletes.append(movie_id)
    return out.finish()


def parse_delta(data: bytes | str, name: str) -> CatalogDelta:
    """Parse a delta by its file name's extension (``.csv`` or ``.json``)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise DeltaError(name, [f"not UTF-8 text ({exc})"]) from exc
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return parse_delta_csv(text, name)
    if suffix == ".json":
        return parse_delta_json(text, name)
    raise DeltaError(name, [f"unknown delta format {suffix or '(no extension)'!r}: use .csv or .json"])


def read_delta(path: str | Path) -> CatalogDelta:
    """Read and parse a local delta file."""
    target = Path(path)
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise DeltaError(str(target), [f"cannot read it ({exc.strerror or exc})"]) from exc
    return parse_delta(data, str(target))
