"""The baselines every figure is compared with: popularity, item-kNN (cosine) and EASE.

All of them score the catalog from a user's history row of the binary
interaction matrix ``X`` (users x catalog). Item-kNN and EASE work on the
``max_items`` most popular movies (all of them on the bundled sample); other
movies get ``-inf`` so that the dense item-item matrices stay in memory on
large MovieLens releases.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp


class Scorer(Protocol):
    name: str

    def score(self, rows: sp.csr_matrix) -> np.ndarray:
        """Scores ``[len(rows), n_items]`` for the users whose history rows are given."""
        ...


class Popularity:
    name = "popularity"

    def __init__(self, x: sp.csr_matrix) -> None:
        self.counts = np.asarray(x.sum(axis=0), dtype=np.float32).ravel()

    def score(self, rows: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.counts, (rows.shape[0], self.counts.shape[0])).copy()


def _top_items(x: sp.csr_matrix, max_items: int) -> np.ndarray:
    counts = np.asarray(x.sum(axis=0)).ravel()
    active = np.flatnonzero(counts > 0)
    if active.size > max_items:
        active = active[np.argsort(-counts[active], kind="stable")[:max_items]]
        active.sort()
    return active


class _ItemItem:
    name = "item-item"

    def __init__(self, x: sp.csr_matrix, max_items: int = 20_000) -> None:
        self.n_items = x.shape[1]
        self.items = _top_items(x, max_items)
        self.weights = self._fit(x[:, self.items].astype(np.float64)).astype(np.float32)

    def _fit(self, x: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def score(self, rows: sp.csr_matrix) -> np.ndarray:
        out = np.full((rows.shape[0], self.n_items), -np.inf, dtype=np.float32)
        out[:, self.items] = rows[:, self.items].astype(np.float32) @ self.weights
        return out


class ItemKNN(_ItemItem):
    """Item-based k-NN with cosine similarity over binary interactions (all neighbours)."""

    name = "item-kNN"

    def _fit(self, x: sp.csr_matrix) -> np.ndarray:
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        xn = x @ sp.diags(1.0 / norms)
        sim = (xn.T @ xn).toarray()
        np.fill_diagonal(sim, 0.0)
        return sim


class EASE(_ItemItem):
    """Embarrassingly Shallow Autoencoder (Steck 2019): closed form with L2 weight ``lam``."""

    name = "EASE"

    def __init__(self, x: sp.csr_matrix, lam: float = 300.0, max_items: int = 20_000) -> None:
        self.lam = lam
        super().__init__(x, max_items)

    def _fit(self, x: sp.csr_matrix) -> np.ndarray:
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += self.lam
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        np.fill_diagonal(b, 0.0)
        return b
