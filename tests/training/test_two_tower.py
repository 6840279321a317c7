"""A short real training run on the bundled sample: learning, the served path, numpy/Keras parity, the bundle."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.bundle import USER_TOWER, open_bundle
from core.errors import BundleError
from core.features import Movie, history_inputs
from training.config import TrainConfig
from training.pipeline import MODEL_NAME, evaluate_all
from training.train import TrainedModel, export_bundle, train_two_tower

pytestmark = pytest.mark.slow

CONFIG = TrainConfig(epochs=3, patience=3, jit_compile=False, members=1)
"""One model (tests/training/test_ensemble.py trains an ensemble of them)."""


@pytest.fixture(scope="module")
def trained(movielens_sample) -> TrainedModel:
    data, split = movielens_sample
    # XLA off here (its compilation is most of a 3-epoch run); tests/training/test_cli_any_layout.py trains with it
    return train_two_tower(data, split, CONFIG, progress=False,
                           log=lambda m: None)


@pytest.fixture(scope="module")
def bundle_dir(trained: TrainedModel, movielens_sample, tmp_path_factory) -> Path:
    data, _ = movielens_sample
    out = tmp_path_factory.mktemp("bundle")
    export_bundle(trained, out, data.summary(), {"two-tower (served)": {"recall@10": 0.0}})
    return out


def test_without_early_stopping_it_trains_every_epoch_and_still_scores_the_validation_users(trained: TrainedModel):
    info = trained.info
    assert not info["config"]["early_stopping"]
    assert info["epochs_run"] == 3 and info["best_epoch"] == 3  # the last epoch is the model, whatever validation says
    assert len(trained.history["val_recall@10"]) == 3 and all(r > 0 for r in trained.history["val_recall@10"])
    assert info["validation"]["users"] > 0 and info["validation"]["metrics"]["recall@10"] > 0


def test_the_loss_falls(trained: TrainedModel):
    losses = trained.history["loss"]
    assert len(losses) == 3
    assert losses[-1] < losses[0] * 0.9


def test_the_served_path_beats_popularity(trained: TrainedModel, movielens_sample):
    data, split = movielens_sample
    ev = evaluate_all(
        split,
        [m.movie_id for m in trained.catalog],
        data.summary(),
        (trained.user_tower, trained.vectors),
        baselines=("popularity",),
        log=lambda m: None,
    )
    assert ev.results[MODEL_NAME]["recall@10"] > ev.results["popularity"]["recall@10"]


def test_numpy_user_tower_matches_keras_including_unknown_ids_and_empty_histories(trained: TrainedModel,
                                                                                   movielens_sample):
    _data, split = movielens_sample
    user_layer, _ = trained.keras_towers  # type: ignore[misc]
    tower = trained.user_tower
    histories = [
        list(zip(split.history(u).tolist(), split.history_ratings(u).tolist(), strict=True)) for u in range(40)
    ]
    histories += [[], [(10**9, 4.0)], [(10**9, None), (1, None), (2, 5.0)], [(1, 0.5)] * 80]
    slots, buckets = history_inputs(tower.movie_ids, histories, tower.history_length)
    assert (slots == 1).any(), "an unknown id must map to the out-of-vocabulary slot"
    keras_u = np.asarray(user_layer(slots, buckets))
    numpy_u = tower.encode_batch(histories)
    assert np.abs(keras_u * tower.inverse_temperature - numpy_u[:, :-1]).max() < 1e-5
    assert np.all(numpy_u[:, -1] == np.float32(tower.popularity_weight))


def test_numpy_item_tower_matches_keras_including_movies_without_ratings(trained: TrainedModel):
    _, item_layer = trained.keras_towers  # type: ignore[misc]
    tower = trained.item_tower
    movies = [
        *list(trained.catalog[:300]),
        Movie(movie_id=10**9, title="A Brand New Space Story", year=2031, genres=("Sci-Fi", "Adventure")),
        Movie(movie_id=10**9 + 1, title="Untitled", year=None, genres=()),
    ]
    inputs = tower.spec.encode(movies)
    assert inputs["id_slot"][-1] == 1
    keras_v = np.asarray(item_layer(inputs["id_slot"], inputs["genres"], inputs["year"], inputs["tokens"]))
    numpy_v = tower.encode(movies)
    assert np.abs(keras_v - numpy_v[:, :-1]).max() < 1e-5
    # the exported vectors are those of the catalog (up to float32 round-off of a different batch size)
    np.testing.assert_allclose(numpy_v[:300], trained.vectors[:300], atol=1e-6)


def test_a_new_movie_gets_a_content_vector_close_to_similar_movies(trained: TrainedModel):
    tower = trained.item_tower
    by_genre = [m for m in trained.catalog if m.genres == ("Horror",) and m.popularity > 20][:10]
    comedy = [m for m in trained.catalog if m.genres == ("Comedy",) and m.popularity > 20][:10]
    new = Movie(movie_id=10**9, title="Night of the Dead House", year=2015, genres=("Horror",))
    v = tower.encode([new])[0, :-1]
    horror = tower.encode(by_genre)[:, :-1] @ v
    comedies = tower.encode(comedy)[:, :-1] @ v
    assert horror.mean() > comedies.mean()


def test_bundle_round_trip_and_size(bundle_dir: Path, trained: TrainedModel):
    bundle = open_bundle(bundle_dir)
    bundle.verify()
    assert bundle.dimension == CONFIG.dimension
    assert bundle.manifest.history_length == CONFIG.history_length
    assert bundle.manifest.dataset["name"] == "ml-latest-small"
    assert (bundle_dir / USER_TOWER).stat().st_size < 5 * 1024 * 1024
    np.testing.assert_array_equal(bundle.movie_vectors, trained.vectors)
    history = [(1, 5.0), (260, 4.5)]
    np.testing.assert_array_equal(bundle.user_tower.encode(history), trained.user_tower.encode(history))
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["training"]["parity_max_abs_diff"] < 1e-5


def test_truncated_and_tampered_files_are_refused_by_name(bundle_dir: Path, tmp_path: Path):
    broken = tmp_path / "truncated"
    shutil.copytree(bundle_dir, broken)
    data = (broken / USER_TOWER).read_bytes()
    (broken / USER_TOWER).write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=r"user_tower\.npz: .* bytes, the manifest says"):
        _ = open_bundle(broken).user_tower
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle_dir, tampered)
    vectors = bytearray((tampered / "movie_vectors.npy").read_bytes())
    vectors[-1] ^= 0xFF
    (tampered / "movie_vectors.npy").write_bytes(bytes(vectors))
    with pytest.raises(BundleError, match=r"movie_vectors\.npy: sha256 .* does not match"):
        open_bundle(tampered).verify()
    with pytest.raises(BundleError, match="no manifest"):
        open_bundle(tmp_path / "nothing")
    (tampered / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        open_bundle(tampered)


def test_inconsistent_shapes_are_refused(bundle_dir: Path, tmp_path: Path, trained: TrainedModel, movielens_sample):
    data, _ = movielens_sample
    short = replace(trained, vectors=trained.vectors[:, :10])
    with pytest.raises(BundleError, match="do not match"):
        export_bundle(short, tmp_path / "bad", data.summary(), {})
