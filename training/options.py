"""The model and training options on a command line: one flag per ``TrainConfig`` field (``--history-length``,
``--user-tower``, ...) plus ``--no-jit``. ``recs train``, ``recs retrain`` and the retraining task's
``retrainArgs`` all read them from here, so they accept the same flags with the same types and defaults."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from core.towers import USER_TOWER_TYPES
from training.config import TrainConfig

NO_JIT = "--no-jit"


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _fields() -> list[Any]:
    return [f for f in fields(TrainConfig) if f.name != "jit_compile"]


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def model_flags() -> frozenset[str]:
    """Every model and training flag, ``--no-jit`` included."""
    return frozenset({_flag(f.name) for f in _fields()} | {NO_JIT})


def add_model_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add one option per ``TrainConfig`` field (its default the field's) and ``--no-jit``."""
    defaults = TrainConfig()
    for f in _fields():
        value = getattr(defaults, f.name)
        if f.name == "user_tower":
            parser.add_argument(_flag(f.name), choices=USER_TOWER_TYPES, default=value,
                                help="the user tower: pooling, or attention / gru (sequence-aware) "
                                     f"(default {value})")
            continue
        parser.add_argument(_flag(f.name), type=_parser_for(value), default=value,
                            help=f"model/training: {f.name} (default {value})")
    parser.add_argument(NO_JIT, action="store_true",
                        help="disable XLA compilation (slower on CPU; turns TensorFlow op determinism on)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` of parsed options (``--max-examples-per-user 0``: no cap). ``ValueError`` on a bad value."""
    values = {f.name: getattr(args, f.name) for f in _fields()}
    if values.get("max_examples_per_user") is not None and values["max_examples_per_user"] <= 0:
        values["max_examples_per_user"] = None
    return TrainConfig(**values, jit_compile=not args.no_jit)


def _parser_for(default: Any) -> Callable[[str], Any]:
    """How a value of a hyper-parameter is read from text, chosen by the type of its default (``none``: no value,
    for the integer fields that may be unset)."""
    if isinstance(default, bool):
        return _boolean
    if isinstance(default, str):
        return str.strip
    if isinstance(default, float):
        return float
    if default is None or isinstance(default, int):
        return integer
    raise ValueError(f"unsupported default {default!r}")


def integer(text: str) -> int | None:
    """An integer, or ``None`` for ``none`` (its name is the one argparse prints: "invalid integer value")."""
    text = text.strip()
    return None if text.lower() == "none" else int(text)


def parse_tune_space(text: str) -> tuple[str, str, list[Any]]:
    """``MODEL.PARAM=V1,V2,...`` (``recs train --tune-space``) -> ``(model, param, values)``: the values the search
    tries for one hyper-parameter of ``two-tower`` (a ``TrainConfig`` field), ``EASE`` (``ease_lambda``),
    ``SASRec`` or ``GRU4Rec`` (a ``SequentialConfig`` field). Each value is checked by building the config with it;
    ``argparse.ArgumentTypeError`` names what is wrong."""
    from dataclasses import replace

    from training.sequential import DEFAULTS as SEQUENTIAL_DEFAULTS
    from training.tuning import EASE_LAMBDA, check_space

    head, sep, tail = text.partition("=")
    model, dot, param = head.strip().rpartition(".")
    if not sep or not dot or not param or not tail.strip():
        raise argparse.ArgumentTypeError(f"expected MODEL.PARAM=V1,V2,... (e.g. two-tower.user_tower=pooling,gru), "
                                         f"got {text!r}")
    configs: dict[str, Any] = {"two-tower": TrainConfig(), **SEQUENTIAL_DEFAULTS}
    if model == "EASE":
        defaults: dict[str, Any] = {"ease_lambda": EASE_LAMBDA}
    elif model in configs:
        defaults = {f.name: getattr(configs[model], f.name) for f in fields(configs[model]) if f.name != "model"}
    else:
        raise argparse.ArgumentTypeError(f"unknown model {model!r} in {text!r}; choose from two-tower, EASE, "
                                         f"{', '.join(SEQUENTIAL_DEFAULTS)}")
    try:
        check_space(model, [param])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if param not in defaults:
        raise argparse.ArgumentTypeError(f"{model} has no hyper-parameter {param!r} (choose from "
                                         f"{', '.join(sorted(defaults))})")
    values: list[Any] = []
    for part in tail.split(","):
        try:
            value = _parser_for(defaults[param])(part.strip())
            if model == "EASE" and not value > 0:
                raise ValueError("ease_lambda must be positive")
            if model in configs:
                replace(configs[model], **{param: value})
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise argparse.ArgumentTypeError(f"{model}.{param}={part.strip()}: {exc}") from None
        values.append(value)
    return model, param, values


def positive_integer(text: str) -> int:
    """An integer of at least 1 (``recs train --tune-max-epochs``)."""
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_seeds(text: str) -> list[int]:
    """``S1,S2,...`` (``recs train --tune-seeds``, ``recs train|evaluate --eval-seeds``) -> distinct integer seeds,
    at least one."""
    from training.tuning import check_seeds

    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integer seeds (e.g. 42,7,123), "
                                         f"got {text!r}") from None
    try:
        return check_seeds(seeds, "seeds")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def tuning_spaces(items: list[tuple[str, str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
    """The search spaces with ``items`` (from ``parse_tune_space``) set: each replaces or adds one hyper-parameter's
    values in its model's default space (``training.tuning.SPACES``); a single value fixes it."""
    from training.tuning import SPACES

    spaces: dict[str, dict[str, list[Any]]] = {}
    for model, param, values in items:
        spaces.setdefault(model, dict(SPACES[model]))[param] = values
    return spaces
