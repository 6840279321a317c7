"""The cost curve of real data sizes: ``python -m bench.scale [--shapes 1m,10m,32m] [--quick]``.

For each shape, a seeded synthetic data set with the size of a MovieLens release (see ``SHAPES``) is
written in that release's layout, then, each in its own child process (so that its peak memory is
its own):

* **generate**: the data set itself (streamed to disk by user chunks);
* **train** (``recs train``): the stages it records in the bundle's manifest, each with its wall time
  and the process's peak resident memory during it (``VmHWM``, reset as each stage starts):
  ``load`` (read and split), ``examples`` (vocabularies, sequences, example index), ``training``
  (every epoch; with the time per epoch and the number of epochs), ``evaluation`` (served path on
  every test user, baselines on every user or a seeded sample) and ``export``; plus the run's
  overall peak (the child's ``ru_maxrss``);
* **index**: a full rebuild of the bundle's catalog through the real indexer job into a bulk sink
  (``bench.indexer``'s osmem proxy that absorbs ``_bulk``), with its docs/s and peak memory.

On the smallest shape the training step is also timed with XLA off (``--no-jit``) next to the XLA
run: the per-epoch times of both are reported side by side.

Prints a table, writes ``scale.png`` (wall time and peak memory against the number of ratings)
into ``--out``, and prints one JSON object as the last line, with the growth ratios of each figure
between the largest and the smallest shape next to the ratio of their ratings.

The generator (``python -m bench.scale generate --shape 1m --out DIR``) writes users, movies and
ratings shaped like the real releases: per-user activity log-normal above the releases' floor of 20
ratings (median about 70, mean about 160, as in MovieLens), movie popularity heavy-tailed
(log-normal weights), tastes as sparse mixtures of 40 topics that set genres and title words,
ratings in time-ordered sessions that stay mostly on one topic, and per-user and per-movie rating
biases; ``.dat`` (1m, 10m), CSV (20m, 25m, 32m) or ml-100k files that the real loaders read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western")
TOPICS = 40
SYLLABLES = ("ka", "lo", "mi", "ren", "to", "sa", "vel", "dor", "an", "ti", "mor", "el", "qu", "zi", "bra", "ne",
             "os", "ly", "tha", "gen", "ur", "fa", "pi", "cro", "dan", "ve", "ro", "shi", "ma", "ta")
T_START, T_END = 789_652_009, 1_697_000_000  # 1995-01-09 .. 2023-10-11, the span of ml-32m


@dataclass(frozen=True)
class Shape:
    """The size of a release and the layout it is written in."""

    name: str
    users: int
    movies: int
    ratings: int
    layout: str  # "dat", "csv" or "100k"
    half_stars: bool = True
    popularity_sigma: float = 2.4
    train_args: tuple[str, ...] = ()
    """``recs train`` flags used for this shape by the cost curve (documented with its figures)."""
    baseline_items: int = 20_000


ONE_MODEL = ("--members", "1")
"""The cost curve measures one model, as every run it records did (before ensembles, one was the default): the
default ensemble of two (``TrainConfig.members``) doubles the training part and nothing else."""

SHAPES = {
    "100k": Shape("100k", 943, 1_682, 100_000, "100k", half_stars=False, popularity_sigma=1.8,
                  train_args=("--epochs", "3", *ONE_MODEL)),
    "1m": Shape("1m", 6_040, 3_706, 1_000_209, "dat", half_stars=False, popularity_sigma=1.8,
                train_args=("--epochs", "3", *ONE_MODEL)),
    "10m": Shape("10m", 69_878, 10_681, 10_000_054, "dat",
                 train_args=("--epochs", "2", "--max-examples-per-user", "30", *ONE_MODEL)),
    "20m": Shape("20m", 138_493, 27_278, 20_000_263, "csv", train_args=("--epochs", "2", *ONE_MODEL)),
    "25m": Shape("25m", 162_541, 62_423, 25_000_095, "csv", train_args=("--epochs", "2", *ONE_MODEL)),
    "32m": Shape("32m", 200_948, 87_585, 32_000_204, "csv",
                 train_args=("--epochs", "2", "--max-examples-per-user", "30", *ONE_MODEL)),
}


# -- the generator -------------------------------------------------------------------------------------

@dataclass
class Catalog:
    ids: np.ndarray
    years: np.ndarray
    topics: np.ndarray
    weights: np.ndarray  # popularity weight
    quality: np.ndarray  # rating bias
    titles: list[str] = field(default_factory=list)
    genres: list[tuple[str, ...]] = field(default_factory=list)


def _words(rng: np.random.Generator, n: int) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        k = int(rng.integers(2, 4))
        out.add("".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), size=k)).capitalize())
    return sorted(out)


def make_catalog(shape: Shape, rng: np.random.Generator) -> Catalog:
    n = shape.movies
    # release years skewed to recent ones; ids grow with the year, as in MovieLens
    years = np.sort(np.clip(2023 - rng.exponential(16.0, size=n).astype(int), 1902, 2023))
    topics = rng.integers(0, TOPICS, size=n)
    weights = np.exp(shape.popularity_sigma * rng.standard_normal(n))
    quality = rng.normal(0.0, 0.45, size=n)
    primary = rng.integers(0, len(GENRES), size=(TOPICS, 2))
    vocabulary = _words(rng, 3000)
    zipf = 1.0 / np.arange(1, len(vocabulary) + 1)
    zipf /= zipf.sum()
    topic_words = rng.integers(0, len(vocabulary), size=(TOPICS, 25))
    titles, genres = [], []
    for i in range(n):
        t = topics[i]
        chosen = {GENRES[primary[t, 0]]}
        if rng.random() < 0.5:
            chosen.add(GENRES[primary[t, 1]])
        if rng.random() < 0.3:
            chosen.add(GENRES[int(rng.integers(0, len(GENRES)))])
        genres.append(() if rng.random() < 0.01 else tuple(sorted(chosen)))
        k = int(rng.integers(1, 5))
        words = [vocabulary[topic_words[t, int(rng.integers(0, 25))]] if rng.random() < 0.6
                 else vocabulary[int(rng.choice(len(vocabulary), p=zipf))] for _ in range(k)]
        title = " ".join(words)
        if rng.random() < 0.05:
            title += ", The"  # MovieLens' inverted articles: a comma the CSV writer must quote
        titles.append(f"{title} ({years[i]})")
    ids = np.arange(1, n + 1, dtype=np.int64)
    return Catalog(ids, years, topics, weights, quality, titles, genres)


def user_activity(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: 20 + log-normal (median about 70, mean about 160), scaled to the release's total."""
    extra = np.exp(3.91 + 1.46 * rng.standard_normal(shape.users))
    cap = max(20, int(0.5 * shape.movies))
    target = shape.ratings - 20 * shape.users
    for _ in range(20):
        counts = np.minimum(20 + np.floor(extra).astype(np.int64), cap)
        extra *= max(target, 0) / max(float((counts - 20).sum()), 1.0)
    counts = np.minimum(20 + np.floor(extra).astype(np.int64), cap)
    # exact total: hand the remainder out one by one to users below the cap
    missing = shape.ratings - int(counts.sum())
    order = rng.permutation(shape.users)
    i = 0
    while missing != 0 and i < 10 * shape.users:
        u = order[i % shape.users]
        if missing > 0 and counts[u] < cap:
            counts[u] += 1
            missing -= 1
        elif missing < 0 and counts[u] > 20:
            counts[u] -= 1
            missing += 1
        i += 1
    return counts


class TopicSampler:
    """Draws movies of a topic in proportion to their popularity (inverse CDF over each topic's movies)."""

    def __init__(self, catalog: Catalog, by_topic: bool = True) -> None:
        topic_of = catalog.topics if by_topic else np.zeros_like(catalog.topics)
        self.order = np.argsort(topic_of, kind="stable")
        topics = topic_of[self.order]
        self.starts = np.searchsorted(topics, np.arange(TOPICS + 1))
        w = catalog.weights[self.order]
        self.cum = np.cumsum(w)
        self.base = np.concatenate([[0.0], self.cum])[self.starts]

    def draw(self, topics: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.base[topics], self.base[topics + 1]
        empty = hi <= lo
        u = lo + rng.random(topics.shape[0]) * (hi - lo)
        pos = np.minimum(np.searchsorted(self.cum, u, side="right"), self.cum.shape[0] - 1)
        pos = np.where(empty, rng.integers(0, self.cum.shape[0], size=topics.shape[0]), pos)
        return self.order[pos]


def _first_of_each(keys: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each distinct key (a stable sort; no hashing)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.ones(ordered.shape[0], dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return order[first]


RATING_TEXT = {True: np.array([f"{x / 2:.1f}" for x in range(11)], dtype=object),
               False: np.array([f"{x / 2:g}" for x in range(11)], dtype=object)}


def _user_chunk(catalog: Catalog, sampler: TopicSampler, counts: np.ndarray, first_user: int,
                rng: np.random.Generator, half_stars: bool) -> dict[str, np.ndarray]:
    """Ratings of consecutive users, in each user's time order."""
    n_users = counts.shape[0]
    taste = rng.dirichlet(np.full(TOPICS, 0.15), size=n_users)
    cum_taste = np.cumsum(taste, axis=1)
    bias = np.asarray(rng.normal(0.0, 0.45, size=n_users))

    # user i's cumulative tastes shifted by i, flattened: one searchsorted draws everyone's topics
    shifted = (np.minimum(cum_taste, 1.0) + np.arange(n_users)[:, None]).ravel()

    def mixture_topics(owner: np.ndarray) -> np.ndarray:
        u = np.minimum(rng.random(owner.shape[0]), 1.0 - 1e-9) + owner
        return np.clip(np.searchsorted(shifted, u, side="right") - owner * TOPICS, 0, TOPICS - 1)

    owner = np.repeat(np.arange(n_users), counts)
    total = owner.shape[0]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    new_session = rng.random(total) < 1 / 12
    new_session[first] = True
    session = np.cumsum(new_session) - 1
    session_topic = mixture_topics(owner[new_session])
    topic = np.where(rng.random(total) < 0.75, session_topic[session], mixture_topics(owner))
    movie = sampler.draw(topic, rng)  # catalog row
    keep = np.zeros(total, dtype=bool)
    everything = TopicSampler(catalog, by_topic=False)
    for attempt in range(12):  # one rating per (user, movie): duplicates are drawn again
        # (from the user's tastes first, then from the whole catalog by popularity, then uniformly:
        # a heavy user can exhaust the movies of its few topics)
        key = owner.astype(np.int64) * catalog.ids.shape[0] + movie
        candidates = np.flatnonzero(~keep)
        candidates = candidates[~np.isin(key[candidates], key[keep], kind="sort")]
        keep[candidates[_first_of_each(key[candidates])]] = True
        redo = ~keep
        if not redo.any():
            break
        if attempt < 2:
            movie[redo] = sampler.draw(mixture_topics(owner[redo]), rng)
        elif attempt < 6:
            movie[redo] = everything.draw(np.zeros(int(redo.sum()), dtype=np.int64), rng)
        else:
            movie[redo] = rng.integers(0, catalog.ids.shape[0], size=int(redo.sum()))
    owner, movie, new_session = owner[keep], movie[keep], new_session[keep]
    # time: each user starts somewhere in the span; sessions days to months apart, items minutes apart
    kept = np.bincount(owner, minlength=n_users)
    start = np.asarray(T_START + rng.random(n_users) * ((T_END - T_START) * 0.9), dtype=np.float64)
    gap = np.where(new_session, rng.exponential(86_400 * 12, size=owner.shape[0]),
                   rng.exponential(150, size=owner.shape[0]) + 5)
    elapsed = np.cumsum(gap)
    user_first = np.concatenate([[0], np.cumsum(kept)[:-1]])
    elapsed -= np.repeat(elapsed[user_first], kept) if owner.size else 0
    timestamps = np.minimum(start[owner] + elapsed, T_END).astype(np.int64)
    affinity = np.asarray(taste[owner, catalog.topics[movie]]) * 2.0
    noise = rng.normal(0.0, 0.85, size=owner.shape[0])
    raw = np.asarray(bias[owner] + catalog.quality[movie] + affinity + noise, dtype=np.float64) + 3.4
    ratings = np.clip(np.round(raw * 2) / 2, 0.5, 5.0) if half_stars else np.clip(np.round(raw), 1, 5)
    return {"user": owner + first_user + 1, "movie": catalog.ids[movie], "rating": ratings.astype(np.float32),
            "timestamp": timestamps}


def generate(shape: Shape, out: Path, seed: int = 0, chunk_ratings: int = 2_000_000) -> dict[str, Any]:
    """Write ``shape`` in its layout into ``out``; returns what was written (counts, files)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    catalog = make_catalog(shape, rng)
    counts = user_activity(shape, rng)
    sampler = TopicSampler(catalog)
    _write_movies(shape, catalog, out)
    path = out / {"dat": "ratings.dat", "csv": "ratings.csv", "100k": "u.data"}[shape.layout]
    written = 0
    rated = np.zeros(shape.movies, dtype=np.int64)
    with path.open("w", encoding="ascii", newline="\n") as fh:
        if shape.layout == "csv":
            fh.write("userId,movieId,rating,timestamp\n")
        bounds = np.concatenate([[0], np.cumsum(counts)])
        a = 0
        while a < shape.users:
            b = int(np.searchsorted(bounds, bounds[a] + chunk_ratings, side="right"))
            b = min(shape.users, max(a + 1, b - 1))
            part = _user_chunk(catalog, sampler, counts[a:b], a, rng, shape.half_stars)
            order = np.lexsort((part["movie"], part["user"]))  # files are sorted by user and movie, not time
            frame = pd.DataFrame({k: v[order] for k, v in part.items()})
            half = np.rint(frame["rating"].to_numpy() * 2).astype(np.int64)
            frame["rating"] = RATING_TEXT[shape.layout == "csv"][half]  # text once per value, not per row
            rated += np.bincount(part["movie"] - 1, minlength=shape.movies)
            if shape.layout == "csv":
                fh.write(frame.to_csv(header=False, index=False, lineterminator="\n"))
            elif shape.layout == "dat":
                text = frame.to_csv(header=False, index=False, sep=":", lineterminator="\n")
                fh.write(text.replace(":", "::"))
            else:
                fh.write(frame.to_csv(header=False, index=False, sep="\t", lineterminator="\n"))
            written += len(frame)
            a = b
    return {"shape": shape.name, "layout": shape.layout, "users": shape.users, "movies": shape.movies,
            "ratings": written, "movies_rated": int((rated > 0).sum()), "max_movie_ratings": int(rated.max()),
            "median_movie_ratings": float(np.median(rated[rated > 0])),
            "median_user_ratings": float(np.median(counts)), "max_user_ratings": int(counts.max()),
            "files": sorted(p.name for p in out.iterdir())}


def _write_movies(shape: Shape, catalog: Catalog, out: Path) -> None:
    if shape.layout == "csv":
        import csv

        with (out / "movies.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["movieId", "title", "genres"])
            for i, title in enumerate(catalog.titles):
                writer.writerow([int(catalog.ids[i]), title, "|".join(catalog.genres[i]) or "(no genres listed)"])
    elif shape.layout == "dat":
        lines = [f"{int(catalog.ids[i])}::{title}::{'|'.join(catalog.genres[i]) or '(no genres listed)'}"
                 for i, title in enumerate(catalog.titles)]
        (out / "movies.dat").write_text("\n".join(lines) + "\n", encoding="latin-1")
    else:
        names = {g: i for i, g in enumerate(ML100K_GENRES)}
        lines = []
        for i, title in enumerate(catalog.titles):
            flags = ["0"] * len(ML100K_GENRES)
            for g in catalog.genres[i]:
                j = names.get("Children's" if g == "Children" else g)
                if j is not None:
                    flags[j] = "1"
            if "1" not in flags:
                flags[0] = "1"
            lines.append(f"{int(catalog.ids[i])}|{title}|01-Jan-{catalog.years[i]}||http://example.org/{i}|"
                         + "|".join(flags))
        (out / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
        (out / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)), encoding="latin-1")


# -- measuring -----------------------------------------------------------------------------------------

def run_child(command: list[str], env: dict[str, str] | None = None) -> tuple[str, float, float]:
    """Run a command to completion; ``(stdout, wall seconds, its peak RSS in MiB)`` (``wait4``'s ``ru_maxrss``
    of that child alone)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err, text=True,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{stderr[-4000:]}")
    return stdout, wall, usage.ru_maxrss / 1024


def _peak_of(out: str) -> float:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return float(json.loads(line).get("peak_rss_mib", float("nan")))
    return float("nan")


def child_main(argv: list[str]) -> int:
    """``python -m bench.scale child generate|train ...``: a measured step that reports its own peak memory."""
    from training.stages import peak_rss_mib

    kind = argv[0]
    if kind == "generate":
        shape = SHAPES[argv[1]]
        info = generate(shape, Path(argv[2]), int(argv[3]))
        print(json.dumps({**info, "peak_rss_mib": round(peak_rss_mib(), 1)}))
        return 0
    if kind == "train":
        from recs.cli import main as recs

        code = recs(["train", *argv[1:]])
        print(json.dumps({"peak_rss_mib": round(peak_rss_mib(), 1)}))
        return code
    raise SystemExit(f"unknown child {kind}")


def measure_shape(shape: Shape, work: Path, seed: int, xla_side_by_side: bool, quick: bool,
                  sink_url: str | None) -> dict[str, Any]:
    data = work / f"data-{shape.name}-{seed}"
    row: dict[str, Any] = {"shape": shape.name, "ratings": shape.ratings, "users": shape.users,
                           "movies": shape.movies, "layout": shape.layout}
    marker = data / "generated.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        row["generate"] = info["measured"]
    else:
        out, wall, _ = run_child([sys.executable, "-m", "bench.scale", "child", "generate", shape.name, str(data),
                                  str(seed)])
        info = json.loads(out.strip().splitlines()[-1])
        info["measured"] = {"seconds": round(wall, 1), "peak_rss_mib": info["peak_rss_mib"]}
        marker.write_text(json.dumps(info))
        row["generate"] = info["measured"]
    row["data"] = {k: info[k] for k in ("movies_rated", "max_movie_ratings", "median_movie_ratings",
                                        "median_user_ratings", "max_user_ratings")}
    _say(f"  {shape.name}: data ready ({row['generate']['seconds']} s)")
    bundle, report = work / f"bundle-{shape.name}", work / f"report-{shape.name}"
    train_args = list(shape.train_args)
    if quick:
        train_args += ["--epochs", "1"]
    command = [sys.executable, "-m", "bench.scale", "child", "train", "--data", str(data), "--out", str(bundle),
               "--report", str(report), "--json", "--quiet", "--baseline-items", str(shape.baseline_items),
               "--baselines", "popularity,item-kNN,EASE",
               *train_args]
    out, wall, _ = run_child(command)
    summary = next(json.loads(line) for line in reversed(out.strip().splitlines()) if line.startswith('{"model'))
    manifest = json.loads((bundle / "manifest.json").read_text())
    training = manifest["training"]
    stage_peaks = [v["peak_rss_mib"] for v in training.get("stages", {}).values()]
    row["train"] = {"seconds": round(wall, 1), "peak_rss_mib": round(max([*stage_peaks, _peak_of(out)]), 1),
                    "stages": training.get("stages", {}), "examples": training["examples"],
                    "steps_per_epoch": training.get("steps_per_epoch"), "epochs_run": training["epochs_run"],
                    "epoch_seconds": training["history"].get("epoch_seconds", []), "xla": training.get("xla"),
                    "args": train_args}
    row["metrics"] = summary["metrics"]
    row["ci95"] = summary.get("ci95")
    row["eval_seconds"] = summary["seconds"]
    row["sample"] = summary.get("sample")
    _say(f"  {shape.name}: trained and evaluated in {wall:.0f} s, peak {row['train']['peak_rss_mib']:.0f} MiB")
    if xla_side_by_side:
        epochs = ["--epochs", "2", "--max-examples-per-user", "40"]  # per-step timing; short epochs
        pairs: dict[str, Any] = {}
        for label, flags in (("xla_on", []), ("xla_off", ["--no-jit"])):
            out_dir = work / f"bundle-{shape.name}-{label}"
            cmd = [sys.executable, "-m", "bench.scale", "child", "train", "--data", str(data), "--out", str(out_dir),
                   "--report", str(work / f"report-{label}"), "--json", "--quiet", "--no-baselines",
                   *train_args, *epochs, *flags]
            run_child(cmd)
            m = json.loads((out_dir / "manifest.json").read_text())["training"]
            pairs[label] = {"epoch_seconds": m["history"]["epoch_seconds"], "xla": m.get("xla"),
                            "op_determinism": m.get("op_determinism")}
        on, off = pairs["xla_on"]["epoch_seconds"], pairs["xla_off"]["epoch_seconds"]
        pairs["speedup_after_first_epoch"] = round(float(np.mean(off[1:] or off)) / float(np.mean(on[1:] or on)), 2)
        row["xla"] = pairs
        _say(f"  {shape.name}: epochs with XLA {on}, without {off}")
    if sink_url:
        out, wall, _ = run_child([sys.executable, "-m", "bench.indexer", "--child", "load", "--bundle", str(bundle),
                                  "--url", sink_url, "--bulk-docs", "500", "--bulk-workers", "4"])
        result = json.loads(out.strip().splitlines()[-1])
        row["index"] = {"seconds": round(result["seconds"], 2), "peak_rss_mib": round(result["peak_rss_mb"], 1),
                        "docs": result["docs"], "docs_per_s": round(result["docs"] / result["seconds"], 0)}
        _say(f"  {shape.name}: indexed {result['docs']:,} movies at {row['index']['docs_per_s']:,.0f} docs/s")
    return row


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


STAGES = ("load", "examples", "training", "evaluation", "export")


def ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    small, large = rows[0], rows[-1]
    out: dict[str, Any] = {"from": small["shape"], "to": large["shape"],
                           "ratings": round(large["ratings"] / small["ratings"], 2)}
    for stage in STAGES:
        a, b = small["train"]["stages"].get(stage), large["train"]["stages"].get(stage)
        if a and b:
            out[f"{stage}_seconds"] = round(b["seconds"] / max(a["seconds"], 1e-3), 2)
            out[f"{stage}_peak_rss"] = round(b["peak_rss_mib"] / max(a["peak_rss_mib"], 1e-3), 2)
    out["peak_rss"] = round(large["train"]["peak_rss_mib"] / small["train"]["peak_rss_mib"], 2)
    ea, eb = small["train"]["epoch_seconds"], large["train"]["epoch_seconds"]
    if ea and eb:
        out["epoch_seconds"] = round(float(np.mean(eb)) / float(np.mean(ea)), 2)
    if "index" in small and "index" in large:
        out["index_seconds"] = round(large["index"]["seconds"] / small["index"]["seconds"], 2)
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["ratings"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for stage in STAGES:
        ys = [r["train"]["stages"].get(stage, {}).get("seconds") for r in rows]
        if all(y is not None for y in ys):
            ax1.plot(x, ys, "o-", label=stage)
        ps = [r["train"]["stages"].get(stage, {}).get("peak_rss_mib") for r in rows]
        if all(p is not None for p in ps):
            ax2.plot(x, ps, "o-", label=stage)
    if all("index" in r for r in rows):
        ax1.plot(x, [r["index"]["seconds"] for r in rows], "s--", label="index")
        ax2.plot(x, [r["index"]["peak_rss_mib"] for r in rows], "s--", label="index")
    ax2.plot(x, [r["generate"]["peak_rss_mib"] for r in rows], "x:", label="generate")
    for ax, label in ((ax1, "wall time (s)"), (ax2, "peak RSS (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("ratings")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8)
    fig.suptitle("recs train and index: cost against data size (synthetic MovieLens shapes)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        return child_main(argv[1:])
    if argv[:1] == ["generate"]:
        p = argparse.ArgumentParser(prog="python -m bench.scale generate")
        p.add_argument("--shape", choices=sorted(SHAPES), required=True)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--seed", type=int, default=0)
        a = p.parse_args(argv[1:])
        print(json.dumps(generate(SHAPES[a.shape], a.out, a.seed)))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="1m", help=f"comma-separated, from {', '.join(SHAPES)} (default 1m; "
                        "the curve: 1m,10m,32m)")
    parser.add_argument("--quick", action="store_true", help="the 100k shape, one epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="keep data and bundles here (reused); default: a temp dir")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where scale.png goes")
    parser.add_argument("--no-index", action="store_true", help="skip the indexing stage")
    parser.add_argument("--fresh", action="store_true",
                        help="measure every shape again (default: a shape measured earlier in --workdir is reused, "
                        "so the curve can be built one shape at a time)")
    parser.add_argument("--no-xla-comparison", action="store_true")
    args = parser.parse_args(argv)
    names = ["100k"] if args.quick else [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        parser.error(f"unknown shape(s): {', '.join(unknown)}")
    shapes = sorted((SHAPES[n] for n in names), key=lambda s: s.ratings)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=args.workdir) as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        server = sink = None
        try:
            if not args.no_index:
                from osmem_server import OsmemServer

                from bench.indexer import BulkSink

                server = OsmemServer.start(japanese=False).__enter__()
                sink = BulkSink(server.url).__enter__()
            for shape in shapes:
                _say(f"== {shape.name}: {shape.ratings:,} ratings, {shape.users:,} users, {shape.movies:,} movies")
                saved = work / f"row-{shape.name}-{args.seed}{'-quick' if args.quick else ''}.json"
                if saved.exists() and not args.fresh:  # measured by an earlier run with this --workdir
                    rows.append(json.loads(saved.read_text()))
                    _say(f"  {shape.name}: measured earlier ({saved})")
                    continue
                side_by_side = shape.ratings <= 1_100_000 and not args.no_xla_comparison  # the small shapes
                rows.append(measure_shape(shape, work, args.seed, side_by_side,
                                          args.quick, sink.url if sink else None))
                saved.write_text(json.dumps(rows[-1]))
        finally:
            if sink is not None:
                sink.__exit__(None, None, None)
            if server is not None:
                server.__exit__(None, None, None)
    print_table(rows)
    result: dict[str, Any] = {"benchmark": "scale", "cpus": os.cpu_count(), "seed": args.seed, "shapes": rows,
                              "ratios": ratios(rows) if len(rows) > 1 else None}
    args.out.mkdir(parents=True, exist_ok=True)
    chart = args.out / "scale.png"
    plot(rows, chart)
    result["chart"] = str(chart)
    print(json.dumps(result))
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ("shape", "ratings", "stage", "wall s", "peak RSS MiB", "notes")
    print("  ".join(f"{h:>14}" for h in header))
    for r in rows:
        lines = [("generate", r["generate"]["seconds"], r["generate"]["peak_rss_mib"], r["layout"])]
        for stage in STAGES:
            s = r["train"]["stages"].get(stage)
            if s:
                note = ""
                if stage == "examples":
                    note = f"{r['train']['examples']:,} examples"
                if stage == "training":
                    eps = r["train"]["epoch_seconds"]
                    note = f"{r['train']['epochs_run']} epochs, {float(np.mean(eps)):.0f} s/epoch" if eps else ""
                if stage == "evaluation":
                    note = f"served R@10 {r['metrics']['two-tower (served)']['recall@10']:.4f}"
                lines.append((stage, s["seconds"], s["peak_rss_mib"], note))
        lines.append(("train (total)", r["train"]["seconds"], r["train"]["peak_rss_mib"], " ".join(r["train"]["args"])))
        if "index" in r:
            lines.append(("index", r["index"]["seconds"], r["index"]["peak_rss_mib"],
                          f"{r['index']['docs_per_s']:,.0f} docs/s"))
        for stage, sec, peak, note in lines:
            cells = (r["shape"], f"{r['ratings']:,}", stage, f"{sec:,.1f}", f"{peak:,.0f}", note)
            print("  ".join(f"{c:>14}" for c in cells))
    if len(rows) > 1:
        print(f"growth {rows[0]['shape']} -> {rows[-1]['shape']}: {json.dumps(ratios(rows))}")
    for r in rows:
        if "xla" in r:
            x = r["xla"]
            print(f"XLA side by side ({r['shape']}): seconds per epoch with XLA {x['xla_on']['epoch_seconds']}, "
                  f"without {x['xla_off']['epoch_seconds']}; speed-up {x['speedup_after_first_epoch']}x "
                  "(epochs after the first, which compiles)")


if __name__ == "__main__":
    sys.exit(main())
