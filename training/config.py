"""The one settings object of training."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.towers import USER_TOWER_TYPES
from training.early_stopping import check_stopping


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the two-tower model and its training (defaults tuned on ml-latest-small)."""

    dimension: int = 64
    """Served vector size: the towers' normalised output (dimension - 1) plus the popularity column."""
    history_length: int = 100
    """How many of the latest history items the user tower reads; with ``temperature`` chosen on validation users."""
    embedding_dim: int = 64
    token_dim: int = 32
    hidden: int = 256
    temperature: float = 0.2
    """Softmax temperature; with ``history_length`` chosen on validation users (``recs train --tune``, mean of three
    seeds: validation Recall@10 0.1657 at 100 items and 0.2, against 0.1632 at 0.15 and 0.1600 at 50 items and 0.1,
    the earlier choice; report/tuning.md)."""
    batch_size: int = 512
    learning_rate: float = 3e-3
    """Chosen on validation users at the chosen history length and temperature (mean of three seeds: validation
    Recall@10 0.1661 at 0.003, against 0.1658 at 0.002, the earlier default, and 0.1610 at 0.004; it raised NDCG@10
    and Recall@100 too; report/tuning.md, "two-tower, one change at the chosen point")."""
    weight_decay: float = 0.0
    epochs: int = 9
    """How many epochs the model trains (with ``early_stopping``: at most). Chosen on validation users the way ``recs
    train --tune`` chooses it: the mean best epoch of the chosen configuration's runs, whose trials early-stop on all
    users' held-out items; on the bundled sample its three runs in report/tuning.md stopped best at 10 / 9 / 8."""
    patience: int = 3
    """With ``early_stopping``: stop after this many epochs in a row without a better validation Recall@10."""
    early_stopping: bool = False
    """Stop on the validation users' Recall@10 (``patience``) and keep the best epoch's weights. Off by default: at
    ``validation_users`` 0.1 of a small data set the signal is too noisy to stop on (61 users on the bundled sample,
    Recall@10 +-0.04; it stopped the chosen configuration at epoch 6 or 8, on two machines, while on all 610 users
    validation Recall@10 kept rising to epochs 9 to 16), so the model trains ``epochs`` epochs and keeps the last;
    ``recs train --tune`` picks that count on all users."""
    min_item_count: int = 1
    max_tokens: int = 3000
    id_dropout: float = 0.05
    """The share of id embeddings dropped in training (the item falls back on its content features). Chosen on
    validation users at learning rate 0.003 (mean of three seeds: validation Recall@10 0.1668 at 0.05, against 0.1661
    at 0.1, the earlier default, and 0.1627 at 0; it raised Recall@100 too; report/tuning.md, "two-tower, one change
    at learning rate 0.003")."""
    target_window: int = 1
    uniform_negatives: int = 0
    """Movies drawn uniformly from the catalog each step as extra negatives beside the in-batch ones (mixed negative
    sampling); 0: in-batch negatives only."""
    max_examples_per_user: int | None = 300
    validation_users: float = 0.1
    """The share of users (with at least 3 history items) whose latest 10% of history is held out and scored after
    every epoch (the training curve, the manifest's validation figures; with ``early_stopping``, when to stop)."""
    seed: int = 42
    members: int = 2
    """How many models of this configuration train, from seeds ``seed``, ``seed + 1``, ...; more than one are served
    as one ensemble (``core.towers.EnsembleUserTower``): the served vectors hold each member's normalised part side
    by side and one popularity column (``members * (dimension - 1) + 1`` floats, 127 by default), so the inner
    product OpenSearch ranks by is the sum of the members' logits. Each member costs its training time and its user
    tower's size and latency again. Chosen on validation users (mean of three seeds: validation Recall@10 0.1679 /
    NDCG@10 0.1365 / Recall@100 0.4573 with two members, against 0.1668 / 0.1305 / 0.4499 with one; report/tuning.md,
    "two-tower, ensembles of seeds"); three were not tried: their user tower (about 7 MB) and training time
    (about 3 minutes) would break the 5 MB and 3-minute budgets of ``bench.training``."""
    jit_compile: bool = True
    sparse_updates: bool = True
    """Lazy Adam on the id-embedding tables: only the rows a batch touches are updated (``training.model``)."""
    user_tower: str = "pooling"
    """``pooling`` (two poolings of the history), ``attention`` (causal self-attention blocks over it) or ``gru``
    (``training.user_towers``); the served vector and the item tower are the same for all three."""
    attention_blocks: int = 1
    attention_heads: int = 2
    sequence_dropout: float = 0.1
    """Dropout of the attention and GRU towers' sequence encoder (training only)."""

    def __post_init__(self) -> None:
        if self.dimension < 3:
            raise ValueError("dimension must be at least 3")
        if self.history_length < 1:
            raise ValueError("history_length must be at least 1")
        if not 0 < self.temperature <= 10:
            raise ValueError("temperature must be in (0, 10]")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2")
        check_stopping(self.epochs, self.patience, self.early_stopping, self.validation_users)
        if self.uniform_negatives < 0:
            raise ValueError("uniform_negatives must be at least 0")
        if not 0 <= self.validation_users <= 1:
            raise ValueError("validation_users must be in [0, 1]")
        if self.user_tower not in USER_TOWER_TYPES:
            raise ValueError(f"user_tower must be one of {', '.join(USER_TOWER_TYPES)}")
        if self.attention_blocks < 1 or self.attention_heads < 1 or self.embedding_dim % self.attention_heads:
            raise ValueError("attention_blocks and attention_heads must be at least 1, heads dividing embedding_dim")
        if self.members < 1:
            raise ValueError("members must be at least 1")
        if not 0 <= self.sequence_dropout < 1:
            raise ValueError("sequence_dropout must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
