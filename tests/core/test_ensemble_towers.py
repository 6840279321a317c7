"""Ensembles of towers (``core.towers.EnsembleUserTower`` / ``EnsembleItemTower``): one inner product is the sum of
the members' logits, the popularity column stays last, the bundle round-trips them, and bad files are refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.bundle import ITEM_TOWER, USER_TOWER, open_bundle
from core.errors import TowerWeightsError
from core.towers import (
    EnsembleItemTower,
    EnsembleUserTower,
    ItemTower,
    UserTower,
    ensemble_item_tower,
    ensemble_user_tower,
    item_tower_from_arrays,
    load_item_tower,
    load_user_tower,
    log_popularity,
    user_tower_from_arrays,
)
from recs.local.synthetic import synthetic_catalog, synthetic_towers, write_synthetic_bundle

DIMENSION = 16
HISTORIES = [[], [(1, 5.0)], [(3, 4.0), (7, None), (999_999, 2.0), (12, 3.5)], [(i, 4.5) for i in range(1, 40)]]


@pytest.fixture(scope="module")
def members():
    catalog = synthetic_catalog(80, seed=0)
    return catalog, [synthetic_towers(catalog, DIMENSION, history_length=20, seed=s) for s in (0, 1, 2)]


def test_one_inner_product_is_the_sum_of_the_members_logits(members):
    catalog, towers = members
    user = EnsembleUserTower(tuple(u for u, _ in towers))
    item = EnsembleItemTower(tuple(i for _, i in towers))
    assert user.dimension == item.dimension == 3 * (DIMENSION - 1) + 1
    u = user.encode_batch(HISTORIES)
    v = item.encode(catalog, batch_size=7)  # chunked: the features are encoded once per chunk for every member
    expected = sum(m_u.encode_batch(HISTORIES) @ m_i.encode(catalog).T for m_u, m_i in towers)
    np.testing.assert_allclose(u @ v.T, expected, rtol=1e-5, atol=1e-5)
    # the popularity column stays the last one: log(1 + popularity) once, the members' weights summed
    np.testing.assert_allclose(v[:, -1], log_popularity([m.popularity for m in catalog]))
    np.testing.assert_allclose(u[:, -1], sum(m.popularity_weight for m, _ in towers), rtol=1e-6)
    # the rest is each member's part side by side
    np.testing.assert_allclose(v[:, DIMENSION - 1 : 2 * (DIMENSION - 1)], towers[1][1].encode(catalog)[:, :-1])
    assert user.knows(3) and not user.knows(999_999)
    assert user.tower_type == "ensemble" and user.member_types == ["pooling"] * 3


def test_one_member_is_the_tower_itself(members):
    _, towers = members
    assert ensemble_user_tower([towers[0][0]]) is towers[0][0]
    assert ensemble_item_tower([towers[0][1]]) is towers[0][1]
    ensemble = ensemble_user_tower([towers[0][0], towers[1][0]])
    with pytest.raises(TowerWeightsError, match="single user towers"):
        ensemble_user_tower([ensemble, towers[2][0]])


def test_a_bundle_round_trips_an_ensemble(tmp_path: Path):
    bundle = write_synthetic_bundle(tmp_path / "b", n_movies=60, dimension=DIMENSION, history_length=10, members=2)
    again = open_bundle(tmp_path / "b")
    again.verify()
    assert again.dimension == 2 * (DIMENSION - 1) + 1
    assert isinstance(again.user_tower, EnsembleUserTower) and isinstance(again.item_tower, EnsembleItemTower)
    assert isinstance(load_user_tower(tmp_path / "b" / USER_TOWER), EnsembleUserTower)
    assert isinstance(load_item_tower(tmp_path / "b" / ITEM_TOWER), EnsembleItemTower)
    np.testing.assert_array_equal(again.item_tower.encode(again.catalog), bundle.movie_vectors)
    history = [(1, 4.0), (5, 3.0)]
    np.testing.assert_array_equal(again.user_tower.encode(history), bundle.user_tower.encode(history))
    # a single model's bundle still reads as one tower
    single = write_synthetic_bundle(tmp_path / "s", n_movies=60, dimension=DIMENSION, history_length=10)
    assert type(open_bundle(tmp_path / "s").user_tower) is UserTower and type(single.item_tower) is ItemTower


def test_members_must_read_the_same_history_and_features(members):
    catalog, towers = members
    short = synthetic_towers(catalog, DIMENSION, history_length=10, seed=5)
    with pytest.raises(TowerWeightsError, match="member 1 reads another history"):
        EnsembleUserTower((towers[0][0], short[0]))
    other = synthetic_towers(synthetic_catalog(81, seed=0), DIMENSION, history_length=20, seed=5)
    with pytest.raises(TowerWeightsError, match="member 1 has other feature vocabularies"):
        EnsembleItemTower((towers[0][1], other[1]))
    moved = replace(towers[1][1], spec=replace(towers[1][1].spec, year_center=2000.0))
    with pytest.raises(TowerWeightsError, match="member 1 has other feature vocabularies"):
        EnsembleItemTower((towers[0][1], moved))
    with pytest.raises(TowerWeightsError, match="at least 2 members"):
        EnsembleUserTower((towers[0][0],))


def test_broken_ensemble_files_are_refused_naming_the_member(members):
    _, towers = members
    arrays = EnsembleUserTower((towers[0][0], towers[1][0])).arrays()
    assert isinstance(user_tower_from_arrays(arrays), EnsembleUserTower)
    with pytest.raises(TowerWeightsError, match="missing array 'members'"):
        user_tower_from_arrays({k: v for k, v in arrays.items() if k != "members"})
    with pytest.raises(TowerWeightsError, match="member 1 has no arrays"):
        user_tower_from_arrays({k: v for k, v in arrays.items() if not k.startswith("member1.")})
    with pytest.raises(TowerWeightsError, match=r"member 0\): missing array 'dense2_kernel'"):
        user_tower_from_arrays({k: v for k, v in arrays.items() if k != "member0.dense2_kernel"})
    with pytest.raises(TowerWeightsError, match="ensemble of 1 member"):
        user_tower_from_arrays({**arrays, "members": np.int32(1)})
    items = EnsembleItemTower((towers[0][1], towers[1][1])).arrays()
    assert isinstance(item_tower_from_arrays(items), EnsembleItemTower)
    with pytest.raises(TowerWeightsError, match=r"member 1\): missing array 'id_embedding'"):
        item_tower_from_arrays({k: v for k, v in items.items() if k != "member1.id_embedding"})


def test_a_file_whose_members_disagree_is_refused_naming_it(members, tmp_path: Path):
    catalog, towers = members
    short = synthetic_towers(catalog, DIMENSION, history_length=10, seed=5)[0]
    arrays = {**EnsembleUserTower((towers[0][0], towers[1][0])).arrays(),
              **{f"member1.{k}": v for k, v in short.arrays().items()}}
    np.savez(tmp_path / USER_TOWER, **arrays)
    with pytest.raises(TowerWeightsError, match=r"user_tower.npz: .*member 1 reads another history"):
        load_user_tower(tmp_path / USER_TOWER)
