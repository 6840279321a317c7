"""Training an ensemble (``TrainConfig.members``): its members are the single models of their seeds, validated on
the same users, and the served path, the bundle and the evaluation take the ensemble as one model."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.bundle import USER_TOWER, open_bundle
from core.towers import EnsembleItemTower, EnsembleUserTower, UserTower
from training.config import TrainConfig
from training.evaluation import EvalSet, per_user_metrics, served_scorer, summarize
from training.train import TrainedModel, export_bundle, train_two_tower

pytestmark = pytest.mark.slow

CONFIG = TrainConfig(epochs=1, history_length=20, dimension=16, batch_size=1024, jit_compile=False, members=2)
"""Small and without XLA (op determinism on, so two runs of one seed are equal to the bit)."""


@pytest.fixture(scope="module")
def ensemble(movielens_sample) -> TrainedModel:
    data, split = movielens_sample
    return train_two_tower(data, split, CONFIG, progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def second_seed(movielens_sample) -> TrainedModel:
    data, split = movielens_sample
    return train_two_tower(data, split, replace(CONFIG, members=1, seed=CONFIG.seed + 1), progress=False,
                           log=lambda m: None)


def test_an_ensemble_serves_its_members_side_by_side(ensemble: TrainedModel):
    user, item = ensemble.user_tower, ensemble.item_tower
    assert isinstance(user, EnsembleUserTower) and isinstance(item, EnsembleItemTower)
    assert len(user.members) == len(item.members) == 2
    assert user.dimension == item.dimension == ensemble.vectors.shape[1] == 2 * (CONFIG.dimension - 1) + 1
    np.testing.assert_array_equal(ensemble.vectors, item.encode(ensemble.catalog))
    assert [m["seed"] for m in ensemble.info["members"]] == [42, 43]
    assert ensemble.info["config"]["members"] == 2 and ensemble.info["best_epoch"] == 1
    # the training curve (the report's plot reads it from the manifest) is the members' mean per epoch
    assert ensemble.info["history"] is ensemble.history and len(ensemble.history["loss"]) == CONFIG.epochs


def test_member_1_is_the_single_model_of_its_seed_but_holds_out_member_0s_validation_users(
        ensemble: TrainedModel, second_seed: TrainedModel):
    """Member 1 draws its validation users as a single run of seed 43 would (so its random stream is that run's) and
    then holds out member 0's: with validation on 10% of the users the two draws differ, so do the models."""
    assert isinstance(ensemble.user_tower, EnsembleUserTower)
    own = second_seed.validation_split
    assert own is not None and own.users.size > 0
    shared = ensemble.info["validation"]
    assert shared["users"] == own.users.size  # the same share of users ...
    member = ensemble.user_tower.members[1]
    assert isinstance(member, UserTower)
    # ... but other users: the member trained on other prefixes than the single run of its seed
    assert not np.array_equal(member.history_embedding, second_seed.user_tower.history_embedding)  # type: ignore[attr-defined]


def test_member_0_is_the_single_model_of_the_seed(movielens_sample, ensemble: TrainedModel):
    data, split = movielens_sample
    single = train_two_tower(data, split, replace(CONFIG, members=1), progress=False, log=lambda m: None)
    assert isinstance(ensemble.user_tower, EnsembleUserTower)
    first = ensemble.user_tower.members[0].arrays()
    for name, value in single.user_tower.arrays().items():
        np.testing.assert_array_equal(first[name], value, err_msg=name)
    np.testing.assert_array_equal(ensemble.vectors[:, : CONFIG.dimension - 1], single.vectors[:, :-1])


def test_the_ensemble_is_scored_as_one_model_and_beats_each_member(movielens_sample, ensemble: TrainedModel,
                                                                   tmp_path: Path):
    data, split = movielens_sample
    assert isinstance(ensemble.user_tower, EnsembleUserTower) and isinstance(ensemble.item_tower, EnsembleItemTower)
    catalog_ids = [m.movie_id for m in ensemble.catalog]
    evalset = EvalSet.build(split, catalog_ids)

    def recall(user, vectors) -> float:
        return summarize(per_user_metrics(served_scorer(user, vectors, split), evalset, progress=False))[0]["recall@10"]

    both = recall(ensemble.user_tower, ensemble.vectors)
    alone = [recall(u, i.encode(ensemble.catalog)) for u, i in zip(ensemble.user_tower.members,
                                                                    ensemble.item_tower.members, strict=True)]
    assert both > max(alone)  # two seeds' errors partly cancel
    # the manifest's validation figures are the ensemble's (61 users here: too few to rank it against its members)
    validation = ensemble.info["validation"]["metrics"]
    assert validation["recall@10"] > 0 and validation["users"] == ensemble.info["validation"]["users"]
    assert validation != ensemble.info["members"][0]["validation"] != ensemble.info["members"][1]["validation"]
    export_bundle(ensemble, tmp_path / "bundle", data.summary(), {})
    bundle = open_bundle(tmp_path / "bundle")
    bundle.verify()
    assert bundle.dimension == ensemble.vectors.shape[1] and bundle.manifest.raw["training"]["members"][1]["seed"] == 43
    # the id embeddings (the bulk, at the default width) of two members fit the user tower's 5 MB budget
    assert (tmp_path / "bundle" / USER_TOWER).stat().st_size < 5 * 1024 * 1024
    assert recall(bundle.user_tower, bundle.movie_vectors) == pytest.approx(both)


def test_a_stage_entered_once_per_member_records_their_total_time_and_highest_peak():
    from training.stages import Stages

    stages = Stages()
    for pause in (0.02, 0.03):
        with stages("training"):
            time.sleep(pause)
    record = stages.to_dict()["stages"]["training"]
    assert 0.05 <= record["seconds"] < 1.0 and record["peak_rss_mib"] > 0


def test_the_curve_of_members_that_stopped_at_different_epochs_averages_those_that_ran():
    from training.train import _mean_history

    curve = _mean_history([{"loss": [4.0, 3.0, 2.0]}, {"loss": [6.0, 5.0]}])
    assert curve == {"loss": [5.0, 4.0, 2.0]}
