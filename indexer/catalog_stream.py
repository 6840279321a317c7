"""Read a bundle's catalog and movie vectors in batches, in memory that does not grow with the catalog.

``Bundle.catalog`` and ``Bundle.movie_vectors`` load everything at once, which is right for the
API but not for indexing a million movies: here ``catalog.json`` is decoded one movie at a time
and ``movie_vectors.npy`` read a block of rows at a time. Both files are still verified against
the manifest (size and sha256) first, through ``Bundle.file``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.bundle import CATALOG, MOVIE_VECTORS, Bundle
from core.errors import BundleError
from core.features import Movie

_BLOCK_CHARS = 1 << 20


@dataclass(frozen=True)
class CatalogBatch:
    """Consecutive catalog rows and their vectors (``vectors[i]`` belongs to ``movies[i]``)."""

    start: int
    movies: list[Movie]
    vectors: np.ndarray


def iter_json_array(path: Path, block_chars: int = _BLOCK_CHARS) -> Iterator[Any]:
    """Yield the elements of a JSON array of objects one by one, reading ``block_chars`` at a time."""
    decoder = json.JSONDecoder()
    with path.open(encoding="utf-8") as fh:
        buf = fh.read(block_chars)
        pos = 0
        eof = not buf

        def fill() -> bool:
            nonlocal buf, pos, eof
            if eof:
                return False
            more = fh.read(block_chars)
            if not more:
                eof = True
                return False
            buf = buf[pos:] + more
            pos = 0
            return True

        def skip_space() -> str:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf):
                    return buf[pos]
                if not fill():
                    return ""

        if skip_space() != "[":
            raise BundleError(f"{path}: not a JSON array")
        pos += 1
        if skip_space() == "]":
            return
        while True:
            skip_space()
            try:
                item, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if fill():
                    continue
                raise BundleError(f"{path}: invalid JSON near character {exc.pos} of a block ({exc.msg})") from exc
            if not isinstance(item, dict):
                raise BundleError(f"{path}: array element is {type(item).__name__}, want an object")
            # An object that decodes is complete (a cut-off one raises above and is retried with more text).
            yield item
            pos = end
            sep = skip_space()
            if sep == ",":
                pos += 1
                continue
            if sep == "]":
                return
            raise BundleError(f"{path}: expected ',' or ']' after an element, found {sep or 'end of file'!r}")


def _npy_header(fh: Any, path: Path) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """``(shape, fortran_order, dtype)`` of an open ``.npy`` file, leaving it at the first data byte."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fh)
        return np.lib.format.read_array_header_2_0(fh)
    except ValueError as exc:
        raise BundleError(f"{path}: not a .npy file ({exc})") from exc


class BundleCatalog:
    """The catalog and vectors of a bundle, streamed in batches of ``batch_size`` rows."""

    def __init__(self, bundle: Bundle, batch_size: int = 1000) -> None:
        self.bundle = bundle
        self.batch_size = batch_size
        self.vectors_path = bundle.file(MOVIE_VECTORS)
        self.catalog_path = bundle.file(CATALOG)
        with self.vectors_path.open("rb") as fh:
            shape, fortran, dtype = _npy_header(fh, self.vectors_path)
            self._offset = fh.tell()
        if len(shape) != 2 or shape[1] != bundle.dimension or dtype != np.dtype("<f4") or fortran:
            raise BundleError(
                f"{self.vectors_path}: {dtype} {shape}{' (Fortran order)' if fortran else ''}, "
                f"want little-endian float32 (n, {bundle.dimension})"
            )
        self.count = int(shape[0])
        self.dimension = int(shape[1])

    def vector_rows(self) -> Iterator[np.ndarray]:
        """Blocks of up to ``batch_size`` vector rows, in catalog order."""
        row_bytes = self.dimension * 4
        with self.vectors_path.open("rb") as fh:
            fh.seek(self._offset)
            remaining = self.count
            while remaining:
                rows = min(self.batch_size, remaining)
                data = fh.read(rows * row_bytes)
                if len(data) != rows * row_bytes:
                    raise BundleError(f"{self.vectors_path}: ends after {self.count - remaining} of {self.count} rows")
                yield np.frombuffer(data, dtype="<f4").reshape(rows, self.dimension)
                remaining -= rows

    def batches(self) -> Iterator[CatalogBatch]:
        """Movies and their vectors together; raises ``BundleError`` if the two files disagree in length."""
        rows = self.vector_rows()
        movies: list[Movie] = []
        start = 0
        for raw in iter_json_array(self.catalog_path):
            try:
                movies.append(Movie.from_dict(raw))
            except (KeyError, TypeError, ValueError) as exc:
                raise BundleError(f"{self.catalog_path}: movie #{start + len(movies)} is invalid ({exc})") from exc
            if len(movies) == self.batch_size:
                yield self._pair(start, movies, rows)
                start += len(movies)
                movies = []
        if movies:
            yield self._pair(start, movies, rows)
            start += len(movies)
        if start != self.count:
            raise BundleError(f"{self.catalog_path}: {start} movies but {self.count} vectors")

    def _pair(self, start: int, movies: list[Movie], rows: Iterator[np.ndarray]) -> CatalogBatch:
        vectors = next(rows, None)
        if vectors is None or vectors.shape[0] < len(movies):
            raise BundleError(f"{self.catalog_path}: more movies than the {self.count} vectors")
        if vectors.shape[0] > len(movies):
            raise BundleError(f"{self.catalog_path}: {start + len(movies)} movies but {self.count} vectors")
        return CatalogBatch(start, movies, vectors)
