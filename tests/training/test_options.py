"""The model and training options: `recs train`, `recs retrain` and `retrainArgs` read the same flags."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from training.config import TrainConfig
from training.options import add_model_options, config_from_args, model_flags
from training.retrain_cli import build_parser, check_model_flags


def _parse(argv: list[str]) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    return config_from_args(parser.parse_args(argv))


def test_no_flags_give_the_defaults() -> None:
    assert _parse([]) == TrainConfig()


def test_flags_set_their_fields_with_their_types() -> None:
    config = _parse(["--history-length", "20", "--temperature", "0.3", "--user-tower", "gru",
                     "--sparse-updates", "false", "--max-examples-per-user", "0", "--no-jit"])
    assert config.history_length == 20 and isinstance(config.history_length, int)
    assert config.temperature == 0.3
    assert config.user_tower == "gru"
    assert config.sparse_updates is False
    assert config.max_examples_per_user is None  # 0: no cap
    assert config.jit_compile is False


@pytest.mark.parametrize("argv", [["--user-tower", "lstm"], ["--sparse-updates", "maybe"], ["--epochs", "two"]])
def test_bad_values_are_refused_by_the_parser(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(argv)
    assert argv[0] in capsys.readouterr().err


def test_recs_train_and_the_retraining_job_accept_the_same_flags() -> None:
    from training.cli import register

    train_root = argparse.ArgumentParser()
    register(train_root.add_subparsers())
    train = train_root.parse_args(["train"])
    retrain = build_parser().parse_args([])
    for flag in model_flags():
        dest = flag.removeprefix("--").replace("-", "_")
        assert getattr(train, dest) == getattr(retrain, dest), flag
    assert {"--user-tower", "--history-length", "--no-jit"} <= model_flags()


def test_retrain_args_hold_only_model_flags_with_valid_values() -> None:
    assert check_model_flags("--epochs 2 --user-tower=attention") == ["--epochs", "2", "--user-tower=attention"]
    with pytest.raises(ValueError, match="--data is not a model or training option"):
        check_model_flags("--data s3://b/")
    with pytest.raises(ValueError, match="invalid choice"):
        check_model_flags("--user-tower lstm")
    with pytest.raises(ValueError, match="temperature"):
        check_model_flags("--temperature 0")


def test_a_tune_space_names_a_model_a_hyper_parameter_and_typed_values() -> None:
    from training.options import parse_tune_space, tuning_spaces
    from training.tuning import SPACES

    assert parse_tune_space("two-tower.user_tower=pooling,attention,gru") == (
        "two-tower", "user_tower", ["pooling", "attention", "gru"])
    assert parse_tune_space("SASRec.blocks=1, 2") == ("SASRec", "blocks", [1, 2])
    assert parse_tune_space("GRU4Rec.negatives=none,256") == ("GRU4Rec", "negatives", [None, 256])
    assert parse_tune_space("EASE.ease_lambda=300") == ("EASE", "ease_lambda", [300.0])
    spaces = tuning_spaces([parse_tune_space("two-tower.user_tower=pooling,gru"),
                            parse_tune_space("two-tower.temperature=0.1")])
    assert spaces == {"two-tower": {**SPACES["two-tower"], "user_tower": ["pooling", "gru"], "temperature": [0.1]}}
    assert SPACES["two-tower"]["temperature"] == [0.1, 0.15, 0.2]  # the defaults are not changed


@pytest.mark.parametrize(("text", "message"), [
    ("two-tower.user_tower", "expected MODEL.PARAM=V1,V2"),
    ("bert.layers=2", "unknown model 'bert'"),
    ("SASRec.gru_size=2", "SASRec has no hyper-parameter 'gru_size'"),
    ("two-tower.user_tower=pooling,lstm", "two-tower.user_tower=lstm: user_tower must be one of"),
    ("SASRec.dropout=1.5", "SASRec.dropout=1.5: dropout must be in"),
    ("EASE.ease_lambda=-1", "must be positive"),
    ("two-tower.batch_size=ten", "two-tower.batch_size=ten"),
    ("two-tower.seed=1,2", "two-tower.seed is not searched"),
    ("two-tower.epochs=5,10", "two-tower.epochs is not searched: every trial early-stops"),
    ("two-tower.early_stopping=false", "two-tower.early_stopping is not searched"),
    ("two-tower.validation_users=0.5", "two-tower.validation_users is not searched"),
    ("SASRec.early_stopping=false", "SASRec.early_stopping is not searched"),
    ("GRU4Rec.validation_users=0.5", "GRU4Rec.validation_users is not searched"),
    ("SASRec.epochs=5", "SASRec.epochs is not searched: every trial early-stops on all users' held-out items (at most "
     "--tune-max-epochs"),
])
def test_a_bad_tune_space_is_refused_naming_the_problem(text: str, message: str) -> None:
    from training.options import parse_tune_space

    with pytest.raises(argparse.ArgumentTypeError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_tune_space(text)


@pytest.mark.parametrize(("text", "seeds"), [("42,7,123", [42, 7, 123]), ("5", [5]), (" 1, 2", [1, 2])])
def test_tune_seeds_are_distinct_integers(text: str, seeds: list[int]) -> None:
    from training.options import parse_seeds

    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(("text", "message"), [("1,1", "distinct"), ("1,x", "integer seeds"), ("", "integer seeds")])
def test_bad_tune_seeds_are_refused(text: str, message: str) -> None:
    from training.options import parse_seeds

    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse_seeds(text)


def test_the_search_refuses_the_seed_as_a_hyper_parameter() -> None:
    from training.tuning import tune_two_tower

    with pytest.raises(ValueError, match="not a hyper-parameter"):
        tune_two_tower(None, None, TrainConfig(), {"seed": [1, 2]})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distinct"):
        tune_two_tower(None, None, TrainConfig(), {"temperature": [0.1]}, seeds=[3, 3])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epochs is not searched"):
        tune_two_tower(None, None, TrainConfig(), {"epochs": [5, 10]})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max epochs must be at least 1"):
        tune_two_tower(None, None, TrainConfig(), {"temperature": [0.1]}, max_epochs=0)  # type: ignore[arg-type]


def test_the_baselines_search_refuses_the_settings_it_sets_on_each_trial() -> None:
    from training.tuning import tune_baselines

    with pytest.raises(ValueError, match=r"GRU4Rec\.epochs is not searched: .* \(at most --tune-max-epochs, 7\)"):
        tune_baselines(None, [], ["GRU4Rec"], spaces={"GRU4Rec": {"epochs": [3]}}, max_epochs=7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"SASRec\.early_stopping is not searched"):
        tune_baselines(None, [], ["SASRec"], spaces={"SASRec": {"early_stopping": [False]}})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max epochs must be at least 1"):
        tune_baselines(None, [], ["SASRec"], max_epochs=0)  # type: ignore[arg-type]


@pytest.mark.parametrize(("best_epochs", "epochs"), [([11, 9, 16], 12), ([1, 2], 2), ([3], 3), ([4, 5, 5], 5)])
def test_the_final_model_trains_the_chosen_points_mean_best_epoch(best_epochs: list[int], epochs: int) -> None:
    from training.tuning import chosen_epochs

    assert chosen_epochs(best_epochs) == epochs  # rounded half up


def test_no_best_epochs_choose_nothing() -> None:
    from training.tuning import chosen_epochs

    for bad in ([], [0, 3]):
        with pytest.raises(ValueError, match="best epochs must be at least 1"):
            chosen_epochs(bad)


def test_recs_train_refuses_a_tune_space_it_would_not_use(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from recs.cli import main

    assert main(["train", "--data", str(tmp_path), "--tune-space", "two-tower.temperature=0.1"]) == 2
    assert "--tune-space needs --tune" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--tune", "--tune-space", "SASRec.blocks=2"]) == 2
    assert "names SASRec, which --baselines does not run" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--tune-seeds", "1,2"]) == 2
    assert "--tune-seeds needs --tune" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--tune-max-epochs", "5"]) == 2
    assert "--tune-max-epochs needs --tune" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", str(tmp_path), "--tune", "--tune-max-epochs", "0"])
    assert "--tune-max-epochs: must be at least 1, got 0" in capsys.readouterr().err


def test_recs_train_tune_space_compares_user_towers_on_validation(tmp_path: Any) -> None:
    import json

    from recs.cli import main
    from tests.training.test_cli_any_layout import make_ml100k

    data = make_ml100k(tmp_path / "ml-100k")
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "bundle"), "--report", str(tmp_path / "report"),
            "--no-baselines", "--quiet", "--epochs", "1", "--batch-size", "64", "--history-length", "10", "--no-jit",
            "--tune", "--tune-space", "two-tower.user_tower=pooling,gru", "--tune-space", "two-tower.history_length=10",
            "--tune-space", "two-tower.temperature=0.2", "--tune-seeds", "3,4", "--seed", "9", "--tune-max-epochs", "2"]
    assert main(argv) == 0
    training = json.loads((tmp_path / "bundle" / "manifest.json").read_text())["training"]
    record = training["tuning"]["two-tower"]
    assert record["space"] == {"history_length": [10], "temperature": [0.2], "user_tower": ["pooling", "gru"]}
    assert [t["params"]["user_tower"] for t in record["trials"]] == ["pooling", "gru"]
    assert training["config"]["user_tower"] == record["chosen"]["user_tower"]
    assert training["config"]["seed"] == 9  # the final model trains from --seed; the search from --tune-seeds
    assert record["seeds"] == [3, 4] and "seed" not in record["base"] and "epochs" not in record["base"]
    chosen_trial = next(t for t in record["trials"] if t["params"] == record["chosen"])
    assert record["max_epochs"] == 2 and all(1 <= e <= 2 for t in record["trials"] for e in t["best_epoch"])
    # the final model trains the chosen point's mean best epoch (not --epochs 1), without early stopping
    assert record["epochs"] == int(sum(chosen_trial["best_epoch"]) / 2 + 0.5)
    assert training["config"]["epochs"] == record["epochs"] == training["epochs_run"]
    assert not training["config"]["early_stopping"]
    for trial in record["trials"]:  # each point's figures are the mean of its seeds' runs
        assert list(trial["by_seed"]) == ["3", "4"] and len(trial["best_epoch"]) == 2
        for metric in ("recall@10", "ndcg@10", "recall@100"):
            runs = [trial["by_seed"][s][metric] for s in ("3", "4")]
            assert trial["validation"][metric] == pytest.approx(sum(runs) / 2)
    best = max(record["trials"], key=lambda t: t["validation"]["recall@10"])
    assert record["chosen"] == best["params"]
    tuning_md = (tmp_path / "report" / "tuning.md").read_text()
    assert "user_tower" in tuning_md and "Each trial trained with seeds 3, 4" in tuning_md
