"""The model and training options: `recs train`, `recs retrain` and `retrainArgs` read the same flags."""

from __future__ import annotations

import argparse

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
    config = _parse(["--history-length", "20", "--temperature", "0.2", "--user-tower", "gru",
                     "--sparse-updates", "false", "--max-examples-per-user", "0", "--no-jit"])
    assert config.history_length == 20 and isinstance(config.history_length, int)
    assert config.temperature == 0.2
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
