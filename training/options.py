"""The model and training options on a command line: one flag per ``TrainConfig`` field (``--history-length``,
``--user-tower``, ...) plus ``--no-jit``. ``recs train``, ``recs retrain`` and the retraining task's
``retrainArgs`` all read them from here, so they accept the same flags with the same types and defaults."""

from __future__ import annotations

import argparse
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
        kind: Any = _boolean if isinstance(value, bool) else float if isinstance(value, float) else int
        parser.add_argument(_flag(f.name), type=kind, default=value, help=f"model/training: {f.name} (default {value})")
    parser.add_argument(NO_JIT, action="store_true",
                        help="disable XLA compilation (slower on CPU; turns TensorFlow op determinism on)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` of parsed options (``--max-examples-per-user 0``: no cap). ``ValueError`` on a bad value."""
    values = {f.name: getattr(args, f.name) for f in _fields()}
    if values.get("max_examples_per_user") is not None and values["max_examples_per_user"] <= 0:
        values["max_examples_per_user"] = None
    return TrainConfig(**values, jit_compile=not args.no_jit)
