"""The baselines every figure is compared with: popularity, item-kNN (cosine) and EASE.

All of them score the catalog from a user's history row of the binary interaction matrix ``X``
(users x catalog). Item-kNN and EASE work on the ``max_items`` most popular movies (all of them on
the bundled sample, 20,000 by default); other movies get ``-inf``. Their cost, for ``n`` items:

* the co-occurrence matrix ``G = X^T X`` (dense float32, ``4 n^2`` bytes: 1.6 GB at 20,000), built
  in blocks of columns from the sparse ``X``: time grows with ``sum over users of |history|^2``;
  item-kNN and EASE share one ``Gram`` (``Gram.shared``);
* item-kNN: a second ``n x n`` float32 array (the similarities);
* EASE: ``(G + lambda I)^-1`` by Cholesky in place (float64 up to ``EASE_FLOAT64_MAX_ITEMS``
  items, float32 above, where a float64 copy would need ``8 n^2`` bytes: 3.2 GB at 20,000),
  ``n^3`` flops;
* scoring: a sparse history row times the dense ``n x n`` weights, ``2 n`` flops per history item.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

DEFAULT_MAX_ITEMS = 20_000
EASE_FLOAT64_MAX_ITEMS = 12_000
"""Up to this many items EASE inverts in float64 (1.2 GB); above it in float32, in place."""
GRAM_BLOCK = 1024


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


class Gram:
    """``X^T X`` over the ``max_items`` most popular columns, dense float32 (counts below 2^24 are exact)."""

    def __init__(self, x: sp.csr_matrix, max_items: int = DEFAULT_MAX_ITEMS, block: int = GRAM_BLOCK,
                 progress: bool = False) -> None:
        self.n_items = x.shape[1]
        self.items = _top_items(x, max_items)
        xi = x[:, self.items].astype(np.float32)
        xi.data[:] = 1.0
        xt = xi.T.tocsr()
        xc = xi.tocsc()
        n = self.items.shape[0]
        self.matrix = np.empty((n, n), dtype=np.float32)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=f"co-occurrences of {n:,} movies", unit="movie", leave=False)
        for start in range(0, n, block):
            stop = min(n, start + block)
            self.matrix[:, start:stop] = (xt @ xc[:, start:stop]).toarray()
            if bar is not None:
                bar.update(stop - start)
        if bar is not None:
            bar.close()


class _ItemItem:
    name = "item-item"
    n_items: int
    items: np.ndarray
    weights: np.ndarray

    def score(self, rows: sp.csr_matrix) -> np.ndarray:
        out = np.full((rows.shape[0], self.n_items), -np.inf, dtype=np.float32)
        out[:, self.items] = rows[:, self.items].astype(np.float32) @ self.weights
        return out


class ItemKNN(_ItemItem):
    """Item-based k-NN with cosine similarity over binary interactions (all neighbours)."""

    name = "item-kNN"

    def __init__(self, x: sp.csr_matrix | None = None, max_items: int = DEFAULT_MAX_ITEMS,
                 gram: Gram | None = None) -> None:
        g = gram if gram is not None else Gram(_required(x), max_items)
        self.n_items, self.items = g.n_items, g.items
        norms = np.sqrt(np.diag(g.matrix).astype(np.float64))
        norms[norms == 0] = 1.0
        inv = (1.0 / norms).astype(np.float32)
        sim = g.matrix * inv[:, None]  # a copy: the Gram may be shared with EASE
        sim *= inv[None, :]
        np.fill_diagonal(sim, 0.0)
        self.weights = sim


class EASE(_ItemItem):
    """Embarrassingly Shallow Autoencoder (Steck 2019): closed form with L2 weight ``lam``.

    ``B = -P / diag(P)`` with ``P = (X^T X + lam I)^-1``, zero diagonal. With ``consume=True`` the
    Gram's matrix is overwritten (no second ``n x n`` array in float32).
    """

    name = "EASE"

    def __init__(self, x: sp.csr_matrix | None = None, lam: float = 300.0, max_items: int = DEFAULT_MAX_ITEMS,
                 gram: Gram | None = None, consume: bool = False) -> None:
        self.lam = lam
        g = gram if gram is not None else Gram(_required(x), max_items)
        self.n_items, self.items = g.n_items, g.items
        n = g.items.shape[0]
        # float64 when it fits (a copy), else float32 in place (the Gram's own memory when consumed)
        a = g.matrix.astype(np.float64) if n <= EASE_FLOAT64_MAX_ITEMS else (g.matrix if consume else g.matrix.copy())
        if consume:
            g.matrix = np.empty((0, 0), dtype=np.float32)
        a[np.diag_indices_from(a)] += lam
        p = _spd_inverse_in_place(a)
        diag = np.diag(p).copy()
        p /= -diag[None, :]
        np.fill_diagonal(p, 0.0)
        self.weights = p.astype(np.float32, copy=False)


def _required(x: sp.csr_matrix | None) -> sp.csr_matrix:
    if x is None:
        raise ValueError("give the interaction matrix or a Gram")
    return x


def _spd_inverse_in_place(a: np.ndarray, block: int = 2048) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix by Cholesky (LAPACK potrf + potri), in ``a``'s memory."""
    a = np.asfortranarray(a) if not a.flags.f_contiguous and not a.flags.c_contiguous else a
    # LAPACK works in Fortran order; a C-ordered symmetric matrix is its own transpose, so factor the
    # transposed view (Fortran-ordered, no copy) and read the result back the same way.
    view = a.T if a.flags.c_contiguous else a
    potrf, potri = (lapack.spotrf, lapack.spotri) if a.dtype == np.float32 else (lapack.dpotrf, lapack.dpotri)
    c, info = potrf(view, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky factorisation failed (info {info})")
    inv, info = potri(c, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverse from the Cholesky factor failed (info {info})")
    out = inv.T if a.flags.c_contiguous else inv
    # potri fills one triangle (the upper one of the Fortran view): mirror it, a block at a time
    n = out.shape[0]
    upper_valid = not a.flags.c_contiguous  # Fortran view upper == C-order lower
    for start in range(0, n, block):
        stop = min(n, start + block)
        if upper_valid:  # out[i, j] valid for i <= j: fill the rows' left part from the columns above
            out[start:stop, :start] = out[:start, start:stop].T
            sub = out[start:stop, start:stop]
            sub[np.tril_indices(stop - start, -1)] = sub.T[np.tril_indices(stop - start, -1)]
        else:  # valid for i >= j: fill the upper part
            out[:start, start:stop] = out[start:stop, :start].T
            sub = out[start:stop, start:stop]
            sub[np.triu_indices(stop - start, 1)] = sub.T[np.triu_indices(stop - start, 1)]
    return out
