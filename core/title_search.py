"""Title search as you type: the terms of a title, and an in-memory token index over a catalog.

The rule every vector index implements (``VectorIndex.search_titles``), the same one OpenSearch's
``match_bool_prefix`` query with ``operator: and`` applies to the ``title`` field:

- the query and the titles are cut into terms the way OpenSearch's ``standard`` analyzer does
  (Unicode word boundaries, lower case): ``"Wall-E"`` -> ``wall``, ``e``; ``"Don't"`` -> ``don't``;
  ``"U.S. Marshals"`` -> ``u.s``, ``marshals``; ``"Se7en"`` -> ``se7en``;
- a movie matches when its title holds every query term, the **last one as a prefix** (so
  ``"star w"`` finds *Star Wars* while it is being typed);
- matches come most popular first, ties by movie id (a person types the title of a movie they know);
- a query without any term (``"!!"``) matches nothing.

``title_terms`` approximates the standard tokenizer (UAX #29 word boundaries) with one regular
expression: letters and digits, joined across ``.``, ``'``, ``\u2019`` and ``:`` between letters and ``.``,
``,``, ``;``, ``'`` between digits. It differs from OpenSearch for scripts written without spaces
(Chinese, Japanese and Thai titles: OpenSearch makes one term per ideograph) and for a few rare
symbols; accents are kept on both sides (``amelie`` does not find *Amélie*). On the 9,742 titles of
ml-latest-small it gives exactly the terms of the standard analyzer of osmem (the tests' in-memory
OpenSearch), superscripts and fractions included (``"8½"`` -> ``8``).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Sequence

import numpy as np

_LETTER = r"[^\W\d_]"
_TERM_RE = re.compile(
    rf"\w+(?:(?:(?<={_LETTER})[.'\u2019:\u00b7](?={_LETTER})|(?<=\d)[.,;'\u2019](?=\d))\w+)*"
)
_PREFIX_END = "\U0010ffff"
MAX_QUERY_CHARS = 200
"""Longest search text the API accepts (``GET /movies/search?q=``)."""


def _not_a_word_character(char: str) -> str:
    # superscripts and vulgar fractions (category No: "²", "½") match \w but end a word in UAX #29
    return " " if unicodedata.category(char) == "No" else char


def title_terms(text: str) -> list[str]:
    """The lower-case terms of a title or a query, in order (duplicates kept)."""
    text = unicodedata.normalize("NFC", text).lower()
    if not text.isascii():
        text = "".join(map(_not_a_word_character, text))
    return _TERM_RE.findall(text)


class TitleIndex:
    """Term -> catalog rows, with a sorted vocabulary for prefix look-ups.

    ``titles[i]`` is row ``i``'s title; ``ranking`` lists the rows best first (most popular), and
    results come in that order. Thread-safe (read-only after construction).
    """

    def __init__(self, titles: Sequence[str], ranking: np.ndarray) -> None:
        n = len(titles)
        self._rank = np.empty(n, dtype=np.int64)
        self._rank[np.asarray(ranking, dtype=np.int64)] = np.arange(n, dtype=np.int64)
        rows_of: dict[str, list[int]] = {}
        for row, title in enumerate(titles):
            for term in set(title_terms(title)):
                rows_of.setdefault(term, []).append(row)
        self._vocabulary = sorted(rows_of)
        self._postings = {term: np.asarray(rows, dtype=np.int64) for term, rows in rows_of.items()}

    def _with_prefix(self, prefix: str) -> np.ndarray:
        lo = bisect.bisect_left(self._vocabulary, prefix)
        hi = bisect.bisect_left(self._vocabulary, prefix + _PREFIX_END, lo)
        if lo == hi:
            return np.empty(0, dtype=np.int64)
        if hi - lo == 1:
            return self._postings[self._vocabulary[lo]]
        return np.unique(np.concatenate([self._postings[t] for t in self._vocabulary[lo:hi]]))

    def search(self, query: str, limit: int) -> np.ndarray:
        """Rows whose title matches ``query`` (see the module docstring), best first, at most ``limit``."""
        terms = title_terms(query)
        if not terms or limit <= 0:
            return np.empty(0, dtype=np.int64)
        *whole, last = terms
        rows = self._with_prefix(last)
        for term in set(whole):
            if rows.size == 0:
                break
            rows = np.intersect1d(rows, self._postings.get(term, np.empty(0, dtype=np.int64)), assume_unique=True)
        if rows.size == 0:
            return rows
        ranks = self._rank[rows]
        if rows.size > limit:
            keep = np.argpartition(ranks, limit - 1)[:limit]
            rows, ranks = rows[keep], ranks[keep]
        return rows[np.argsort(ranks, kind="stable")]

