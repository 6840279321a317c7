"""Loaders for the MovieLens layouts, detected from the directory's files.

| layout | files |
|---|---|
| ``csv`` (ml-latest-small, ml-latest, ml-20m, ml-25m, ml-32m) | ``ratings.csv``, ``movies.csv`` with headers |
| ``dat`` (ml-1m, ml-10m) | ``ratings.dat``, ``movies.dat``, ``::``-separated, no header |
| ``100k`` (ml-100k) | ``u.data`` (tab-separated), ``u.item`` (``|``-separated, 19 genre flags), ``u.genre`` |

Every problem with a file is a :class:`DataError` naming the file and, where it
applies, the line: never a stack trace from inside pandas.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.features import Movie, parse_genres, split_title
from training.errors import DataError

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip


@dataclass(frozen=True)
class Ratings:
    """Interactions as parallel arrays, in file order."""

    user_ids: np.ndarray  # int32 (int64 for ids beyond its range)
    movie_ids: np.ndarray  # int32 (int64 for ids beyond its range)
    ratings: np.ndarray  # float32
    timestamps: np.ndarray  # int64

    @classmethod
    def empty(cls) -> Ratings:
        """No interactions (what a ``Dataset`` keeps once a ``Split`` holds them)."""
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, np.zeros(0, dtype=np.float32), none)

    def __len__(self) -> int:
        return int(self.user_ids.shape[0])

    def take(self, mask: np.ndarray) -> Ratings:
        return Ratings(self.user_ids[mask], self.movie_ids[mask], self.ratings[mask], self.timestamps[mask])

    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in (self.user_ids, self.movie_ids, self.ratings, self.timestamps))


@dataclass(frozen=True)
class Dataset:
    name: str
    layout: str
    movies: list[Movie]
    ratings: Ratings

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "layout": self.layout,
            "users": int(np.unique(self.ratings.user_ids).size),
            "movies": len(self.movies),
            "ratings": len(self.ratings),
        }


def detect_layout(directory: Path) -> str:
    if (directory / "ratings.csv").exists():
        return "csv"
    if (directory / "ratings.dat").exists():
        return "dat"
    if (directory / "u.data").exists():
        return "100k"
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory")
    raise DataError(
        f"{directory}: not a MovieLens directory (expected ratings.csv + movies.csv, "
        "ratings.dat + movies.dat, or u.data + u.item)"
    )


def load_movielens(directory: str | Path) -> Dataset:
    """Load any supported MovieLens layout; ratings of movies missing from the movie file are dropped."""
    root = Path(directory)
    layout = detect_layout(root)
    if layout == "csv":
        movies = _load_movies_csv(root / "movies.csv")
        ratings = _load_ratings(root / "ratings.csv", sep=",", header=True)
    elif layout == "dat":
        movies = _load_movies_dat(root / "movies.dat")
        ratings = _load_ratings(root / "ratings.dat", sep="::", header=False)
    else:
        movies = _load_movies_100k(root / "u.item", root / "u.genre")
        ratings = _load_ratings(root / "u.data", sep="\t", header=False)
    known = np.asarray(sorted(m.movie_id for m in movies), dtype=np.int64)
    keep = np.isin(ratings.movie_ids, known)
    if not keep.any():
        raise DataError(f"{root}: no rating refers to a movie in the movie file")
    if not keep.all():
        ratings = ratings.take(keep)
    return Dataset(name=root.name, layout=layout, movies=movies, ratings=ratings)


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def _read_text(path: Path) -> str:
    raw = _require(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # ml-1m, ml-100k


def _read_frame(path: Path, text: str, sep: str, names: list[str], header: bool) -> pd.DataFrame:
    if sep == "::":
        text = text.replace("::", "\t")
        sep = "\t"
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=0 if header else None,
            names=None if header else names,
            dtype=str,
            keep_default_na=False,
            engine="c",
            quoting=0 if sep == "," else 3,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        line = re.search(r"line (\d+)", str(exc))
        where = f" line {line.group(1)}" if line else ""
        raise DataError(f"{path}{where}: malformed ({exc})") from None
    if header:
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise DataError(f"{path} line 1: missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise DataError(f"{path}: no rows")
    return frame


def _numeric(path: Path, frame: pd.DataFrame, column: str, header: bool, integer: bool) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        line = row + (2 if header else 1)
        raise DataError(f"{path} line {line}: {column} {frame[column].iloc[row]!r} is not a number")
    return values.to_numpy(dtype=np.int64 if integer else np.float32)


def _load_ratings(path: Path, sep: str, header: bool) -> Ratings:
    """Typed, vectorised read (the C parser straight into int32/float32/int64 columns, no string per field);
    a file it cannot read is read again by ``_diagnose_ratings``, which names the file and line."""
    _require(path)
    try:
        ratings = _read_ratings_typed(path, sep, header)
    except (pd.errors.ParserError, ValueError, OverflowError, KeyError, TypeError):
        ratings = None
    if ratings is None:
        return _diagnose_ratings(path, sep, header)
    return ratings


RATING_COLUMNS = ["userId", "movieId", "rating", "timestamp"]


def _read_ratings_typed(path: Path, sep: str, header: bool) -> Ratings | None:
    """None when the file has something the fast path does not accept (the slow path then says what)."""
    dtypes: dict[Any, Any]
    if sep == "::":
        # "1::2::3.5::4" read with ":" as the separator: fields 0, 2, 4 and 6 hold the values, 1, 3 and 5
        # are empty (read as NaN, checked below); no usecols, so a line with more fields is an error
        names: list[Any] = list(range(7))
        usecols: list[Any] = [0, 2, 4, 6]
        dtypes = {0: np.int32, 1: np.float32, 2: np.int32, 3: np.float32, 4: np.float32, 5: np.float32,
                  6: np.int64}
        reader_sep = ":"
    else:
        names = RATING_COLUMNS
        usecols = RATING_COLUMNS
        dtypes = {"userId": np.int32, "movieId": np.int32, "rating": np.float32, "timestamp": np.int64}
        reader_sep = sep
    frame = pd.read_csv(
        path, sep=reader_sep, header=0 if header else None, names=None if header else names,
        dtype=dtypes, engine="c", encoding="latin-1", quoting=0 if sep == "," else 3, na_filter=True,
    )
    if frame.empty or any(c not in frame.columns for c in usecols):
        return None
    if sep == "::" and (frame.shape[1] != 7 or not all(frame[c].isna().all() for c in (1, 3, 5))):
        return None
    if sep != "::" and not header and frame.shape[1] != 4:
        return None
    columns = [frame[c].to_numpy() for c in usecols]
    del frame
    user_ids, movie_ids, ratings, timestamps = columns
    if np.isnan(ratings).any() or (ratings < 0).any() or (ratings > 10).any():
        return None
    return Ratings(user_ids=user_ids, movie_ids=movie_ids, ratings=ratings, timestamps=timestamps)


def _diagnose_ratings(path: Path, sep: str, header: bool) -> Ratings:
    """The careful path: every field read as text, then checked; a problem is a ``DataError`` naming the line."""
    names = RATING_COLUMNS
    frame = _read_frame(path, _read_text(path), sep, names, header)
    if not header and frame.shape[1] != 4:
        raise DataError(f"{path} line 1: expected 4 fields, found {frame.shape[1]}")
    ratings = _numeric(path, frame, "rating", header, integer=False)
    if (ratings < 0).any() or (ratings > 10).any():
        row = int(np.argmax((ratings < 0) | (ratings > 10)))
        raise DataError(f"{path} line {row + (2 if header else 1)}: rating {ratings[row]} out of range")
    return Ratings(
        user_ids=_numeric(path, frame, "userId", header, integer=True),
        movie_ids=_numeric(path, frame, "movieId", header, integer=True),
        ratings=ratings,
        timestamps=_numeric(path, frame, "timestamp", header, integer=True),
    )


def _movies_from(path: Path, frame: pd.DataFrame, header: bool, genres_of: list[tuple[str, ...]]) -> list[Movie]:
    ids = _numeric(path, frame, "movieId", header, integer=True)
    movies = []
    for i, (movie_id, raw_title) in enumerate(zip(ids.tolist(), frame["title"].tolist(), strict=True)):
        title, year = split_title(raw_title)
        if not title:
            raise DataError(f"{path} line {i + (2 if header else 1)}: empty title")
        movies.append(Movie(movie_id=int(movie_id), title=title, year=year, genres=genres_of[i]))
    return movies


def _load_movies_csv(path: Path) -> list[Movie]:
    frame = _read_frame(path, _read_text(path), ",", ["movieId", "title", "genres"], header=True)
    return _movies_from(path, frame, True, [parse_genres(g) for g in frame["genres"].tolist()])


def _load_movies_dat(path: Path) -> list[Movie]:
    frame = _read_frame(path, _read_text(path), "::", ["movieId", "title", "genres"], header=False)
    if frame.shape[1] != 3:
        raise DataError(f"{path} line 1: expected 3 fields, found {frame.shape[1]}")
    return _movies_from(path, frame, False, [parse_genres(g) for g in frame["genres"].tolist()])


def _load_movies_100k(path: Path, genre_path: Path) -> list[Movie]:
    genres = list(ML100K_GENRES)
    if genre_path.is_file():
        names = [ln.split("|")[0] for ln in _read_text(genre_path).splitlines() if ln.strip()]
        if len(names) == len(genres):
            genres = ["Children" if g == "Children's" else g for g in names]
    names = ["movieId", "title", "release", "video", "url", *[f"g{i}" for i in range(len(genres))]]
    frame = _read_frame(path, _read_text(path), "|", names, header=False)
    if frame.shape[1] != len(names):
        raise DataError(f"{path} line 1: expected {len(names)} fields, found {frame.shape[1]}")
    flags = frame[[f"g{i}" for i in range(len(genres))]].to_numpy()
    genre_lists = [
        tuple(g for g, flag in zip(genres, row, strict=True) if flag == "1" and g != "unknown") for row in flags
    ]
    return _movies_from(path, frame, False, genre_lists)
