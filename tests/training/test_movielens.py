"""Loaders for every MovieLens layout, from small fixtures written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.errors import DataError
from training.movielens import detect_layout, load_movielens


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    write(tmp_path / "movies.csv", 'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
          '2,"American President, The (1995)",Comedy|Drama|Romance\n3,Untitled,(no genres listed)\n')
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,100\n1,2,3.5,50\n2,3,5.0,10\n2,99,1,11\n")
    return tmp_path


def test_csv_layout_reads_movies_with_quoted_titles_years_and_genres(csv_dir: Path):
    data = load_movielens(csv_dir)
    assert data.layout == "csv"
    by_id = {m.movie_id: m for m in data.movies}
    assert by_id[2].title == "American President, The" and by_id[2].year == 1995
    assert by_id[2].genres == ("Comedy", "Drama", "Romance")
    assert by_id[3].year is None and by_id[3].genres == ()
    # the rating of movie 99 (not in movies.csv) is dropped
    assert len(data.ratings) == 3
    assert data.ratings.ratings.dtype == np.float32


def test_dat_layout_ml1m_latin1(tmp_path: Path):
    write(tmp_path / "movies.dat", "1::Toy Story (1995)::Animation|Children's|Comedy\n"
          "2::Misérables, Les (1995)::Drama\n", encoding="latin-1")
    write(tmp_path / "ratings.dat", "1::1::5::978300760\n1::2::3::978302109\n2::1::4::978301968\n")
    data = load_movielens(tmp_path)
    assert data.layout == "dat"
    assert {m.title for m in data.movies} == {"Toy Story", "Misérables, Les"}
    assert data.summary() == {"name": tmp_path.name, "layout": "dat", "users": 2, "movies": 2, "ratings": 3}


def test_dat_layout_ml10m_half_stars(tmp_path: Path):
    write(tmp_path / "movies.dat", "5::Father of the Bride Part II (1995)::Comedy\n")
    write(tmp_path / "ratings.dat", "1::5::3.5::838985046\n")
    data = load_movielens(tmp_path)
    assert float(data.ratings.ratings[0]) == 3.5


def test_100k_layout_with_genre_flags(tmp_path: Path):
    flags = ["0"] * 19
    flags[3] = flags[4] = "1"  # Animation, Children's
    write(tmp_path / "u.item", "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(flags) + "\n"
          "2|GoldenEye (1995)|01-Jan-1995||http://y|" + "|".join(["0", "1"] + ["0"] * 17) + "\n", encoding="latin-1")
    write(tmp_path / "u.genre", "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\n"
          "Documentary|7\nDrama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\nMystery|13\nRomance|14\n"
          "Sci-Fi|15\nThriller|16\nWar|17\nWestern|18\n")
    write(tmp_path / "u.data", "196\t1\t3\t881250949\n186\t2\t3\t891717742\n")
    data = load_movielens(tmp_path)
    assert data.layout == "100k"
    by_id = {m.movie_id: m for m in data.movies}
    assert by_id[1].genres == ("Animation", "Children")
    assert by_id[2].genres == ("Action",)


def test_the_bundled_sample_loads_completely():
    data = load_movielens("data/ml-latest-small")
    assert data.summary() == {"name": "ml-latest-small", "layout": "csv", "users": 610, "movies": 9742,
                              "ratings": 100836}


def test_unknown_directory_is_a_clear_error(tmp_path: Path):
    with pytest.raises(DataError, match="not a MovieLens directory"):
        detect_layout(tmp_path)
    with pytest.raises(DataError, match="no such directory"):
        load_movielens(tmp_path / "nope")


def test_missing_movie_file_names_it(tmp_path: Path):
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,1\n")
    with pytest.raises(DataError, match=r"movies\.csv: file not found"):
        load_movielens(tmp_path)


def test_malformed_value_names_file_and_line(csv_dir: Path):
    write(csv_dir / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,100\n1,2,abc,50\n")
    with pytest.raises(DataError, match=r"ratings\.csv line 3: rating 'abc' is not a number"):
        load_movielens(csv_dir)


def test_wrong_field_count_names_file_and_line(csv_dir: Path):
    write(csv_dir / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,100\n1,2,3,50,7,8\n")
    with pytest.raises(DataError, match=r"ratings\.csv line 3"):
        load_movielens(csv_dir)


def test_missing_column_names_it(csv_dir: Path):
    write(csv_dir / "ratings.csv", "userId,movieId,timestamp\n1,1,100\n")
    with pytest.raises(DataError, match=r"ratings\.csv line 1: missing column\(s\) rating"):
        load_movielens(csv_dir)


def test_out_of_range_rating_names_line(tmp_path: Path):
    write(tmp_path / "movies.dat", "1::A (1990)::Drama\n")
    write(tmp_path / "ratings.dat", "1::1::4::1\n1::1::-3::2\n")
    with pytest.raises(DataError, match=r"ratings\.dat line 2: rating -3\.0 out of range"):
        load_movielens(tmp_path)
