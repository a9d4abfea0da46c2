"""Keras next-item models over click sequences: GRU4Rec-style (a GRU over the clicks) or
SASRec-style (causal self-attention with positional embeddings), params.yaml chooses.

Both take the last ``max_length`` clicks of a session as item indices and give next-item logits
at every position over the whole catalogue (a full softmax, output tied to the item embeddings);
training is cross-entropy at every position of every training session with a next click (every
prefix is a training example), the softmax computed at those positions only (padding is most of
a short session's window and used to cost most of the training time). The registered model takes a session's clicks so far as one string of
space-separated item ids and returns the top-k next items with their probabilities (unknown
items skipped; a prefix without a known item gets the training popularity list). It also takes
an optional string of the clicks' times (space-separated unix seconds, one per item id): with
it, the clicks are put in time order first, as clients may send them out of order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from components.config import Section


class SessionFeatures(Section):
    """The click log's columns, and the name of the prefix column the registered model takes."""

    session: str
    item: str
    time: str
    # the served input: a session's clicks so far, space-separated item ids, oldest first
    prefix: str = "items"
    # the optional served input beside it: the clicks' unix seconds, space-separated, one per item
    # id; when sent, the clicks are scored in time order (clients may send them out of order)
    prefix_times: str = "times"


class SessionsTrain(Section):
    """The next-item model's settings (``train`` of a sessions use case)."""

    architecture: Literal["gru", "sasrec"]
    embedding_dim: int
    # clicks of a session the model reads (the most recent ones)
    max_length: int
    dropout: float
    # sasrec only: attention blocks and heads (embedding_dim must divide by heads)
    blocks: int = 1
    heads: int = 1
    learning_rate: float
    # the learning rate is multiplied by this after every epoch
    learning_rate_decay: float
    batch_size: int
    max_epochs: int
    # validation MRR@top_k measurements without improvement before stopping
    early_stopping_patience: int
    # items the registered model returns per prefix (also the k of the validation MRR)
    top_k: int
    # refit on train + validation sessions for the best epoch count (the validation day is the
    # newest data before the test: worth training on)
    refit: bool = True
    # gru only: the GRU's ten steps traced as straight-line ops instead of a while loop (faster on
    # a CPU; the same arithmetic up to float rounding order)
    unroll: bool = False
    # no random validation rows: the split is by period (split.method session_time), recorded as 0
    validation_fraction: float = 0.0


def non_null_columns(features: SessionFeatures) -> list[str]:
    """A click needs its session, item and time."""
    return [features.session, features.item, features.time]


def item_strings(values) -> np.ndarray:
    """Item ids as the model's strings (``214716935``, never ``214716935.0``)."""
    series = pd.Series(values)
    if pd.api.types.is_float_dtype(series) and series.dropna().eq(series.dropna().round()).all():
        series = series.astype("Int64")
    return series.astype(str).to_numpy()


def ordered_clicks(clicks: pd.DataFrame, features: SessionFeatures) -> pd.DataFrame:
    """The clicks by session, then time (a stable sort: clicks at the same time keep file order)."""
    return clicks.sort_values([features.session, features.time], kind="stable")


def session_sequences(clicks: pd.DataFrame, features: SessionFeatures) -> list[np.ndarray]:
    """Each session's item ids (strings) in click order, sessions in id order."""
    ordered = ordered_clicks(clicks, features)
    items = item_strings(ordered[features.item].to_numpy())
    sessions = ordered[features.session].to_numpy()
    edges = np.flatnonzero(sessions[1:] != sessions[:-1]) + 1
    return np.split(items, edges) if len(items) else []


@dataclass(frozen=True)
class Catalogue:
    """The items a model knows (index i + 1 is items[i]; 0 is padding) and their training clicks."""

    items: np.ndarray
    clicks: np.ndarray

    @classmethod
    def from_sequences(cls, sequences: list[np.ndarray]) -> Catalogue:
        flat = np.concatenate(sequences) if sequences else np.array([], dtype=str)
        items, counts = np.unique(flat, return_counts=True)
        return cls(items=items, clicks=counts.astype("float64"))

    def index(self, sequence: np.ndarray) -> np.ndarray:
        """Item indices (0: unknown)."""
        position = np.searchsorted(self.items, sequence)
        position = np.minimum(position, max(len(self.items) - 1, 0))
        known = (self.items[position] == sequence) if len(self.items) else np.zeros(len(sequence), bool)
        return np.where(known, position + 1, 0).astype("int32")


def padded_prefixes(indexed: list[np.ndarray], length: int) -> np.ndarray:
    """(sequences, length) left-padded last ``length`` indices of each sequence (unknowns dropped)."""
    out = np.zeros((len(indexed), length), dtype="int32")
    for row, sequence in enumerate(indexed):
        kept = sequence[sequence > 0][-length:]
        if len(kept):
            out[row, length - len(kept):] = kept
    return out


def training_arrays(indexed: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-item targets at every position (0: no target) of each session; sessions
    longer than ``length + 1`` are cut into windows so every click is a target once."""
    inputs, targets = [], []
    for sequence in indexed:
        sequence = sequence[sequence > 0]
        for end in range(len(sequence), 1, -length):
            window = sequence[max(0, end - length - 1):end]
            x, y = np.zeros(length, "int32"), np.zeros(length, "int32")
            x[length - len(window) + 1:], y[length - len(window) + 1:] = window[:-1], window[1:]
            inputs.append(x)
            targets.append(y)
    if not inputs:
        return np.zeros((0, length), "int32"), np.zeros((0, length), "int32")
    return np.stack(inputs), np.stack(targets)


def build_session_model(clicks: pd.DataFrame, features: SessionFeatures, params: SessionsTrain, seed: int, *,
                        label: str = ""):
    """The training network over the catalogue of ``clicks``: (rows, max_length) item indices ->
    hidden states at every position; compiled with Adam and the next item's cross-entropy at the
    positions with a target (the full softmax for those only: most positions of short sessions
    are padding)."""
    import keras

    from components.models.session_layers import SequenceEncoder, TargetPositionsLoss

    keras.utils.set_random_seed(seed)
    catalogue = Catalogue.from_sequences(session_sequences(clicks, features))
    ids = keras.Input(shape=(params.max_length,), dtype="int32", name="item_ids")
    encoder = SequenceEncoder(len(catalogue.items), params.embedding_dim, params.max_length, params.architecture,
                              params.blocks, params.heads, params.dropout, unroll=params.unroll, name="sequence_encoder")
    network = keras.Model(ids, encoder(ids, hidden_only=True), name=f"next_item_{params.architecture}")
    network.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss=TargetPositionsLoss(encoder))
    network.catalogue = catalogue
    return network


def build_serving(network, features: SessionFeatures, top_k: int):
    """The registered model: a prefix string (and optionally its click times) in, ``items``
    (rows, k) ids and ``scores`` out."""
    import keras

    from components.models.session_layers import PrefixIds, TopNextItems

    catalogue = network.catalogue
    encoder = network.get_layer("sequence_encoder")
    prefix = keras.Input(shape=(1,), dtype="string", name=features.prefix)
    times = keras.Input(shape=(1,), dtype="string", name=features.prefix_times, optional=True)
    ids = PrefixIds(list(catalogue.items), encoder.max_length, features.prefix, features.prefix_times,
                    name="prefix_ids")(prefix, times)
    top = TopNextItems(list(catalogue.items), top_k, features.session, features.item, name="top_items")
    items, scores = top(encoder(ids, last_only=True), ids)
    top.set_weights([np.concatenate([[0.0], catalogue.clicks]).astype("float32")])
    return keras.Model(inputs={features.prefix: prefix, features.prefix_times: times},
                       outputs={"items": items, "scores": scores},
                       name="next_items")
