"""Content-based and hybrid recommendation: an item tower over item attributes named in params.yaml.

Every item is a content vector (``content_matrix``): its text attributes through the frozen,
cached sentence encoder, its categories (0/1 flag columns as they are, other columns one-hot over
the item table's values) and its numbers (standardised on the table, a missing flag each). The
hybrid network (``coldstart_layers``) is the Mult-DAE user tower of ``recommender`` facing an
item tower: item vector = MLP(content) + a free residual embedding for items with history, so
warm items keep their collaborative vector while an item nobody has interacted with is scored from
its attributes alone. Both heads are trained on the same histories (hybrid and content-only
softmax), so the content tower ranks on its own (DropoutNet's idea without the random dropping).

The registered model reads the configured item table (every item of the use case's data, with
history or not): user ids in, the top-k unseen items of the whole table out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.config import Section
from components.models.encoder import EncoderParams
from components.models.recommender import RecommendTrain


class ColdStartFeatures(Section):
    user: str
    item: str
    # item attributes: texts (joined by ". " and encoded), categories, numbers
    item_text: tuple[str, ...] = ()
    item_categories: tuple[str, ...] = ()
    item_numbers: tuple[str, ...] = ()

    @property
    def attributes(self) -> list[str]:
        return [*self.item_text, *self.item_categories, *self.item_numbers]


class ColdStartTrain(RecommendTrain):
    encoder: EncoderParams | None = None
    # the encoder's unit vector times this, beside the categories' and numbers' columns
    text_scale: float = 1.0
    content_hidden_units: tuple[int, ...] = (256,)
    content_dropout: float = 0.0
    # L2 on the warm items' residual embeddings (higher: warm items lean on their content)
    residual_l2: float = 0.001
    # weight of the content-only softmax beside the hybrid one
    content_loss_weight: float = 1.0


def non_null_columns(features: ColdStartFeatures) -> list[str]:
    """An interaction needs its user and item id; an attribute may be missing (numbers get a flag)."""
    return [features.user, features.item]


def item_table(frame: pd.DataFrame, features: ColdStartFeatures) -> pd.DataFrame:
    """One row per item id (sorted), with its attributes (the first row's value of each)."""
    columns = [features.item, *[c for c in features.attributes if c != features.item]]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        from components.errors import ConfigError

        raise ConfigError(f"features names item attribute columns {missing} the data does not have; "
                          f"the data's columns are {sorted(map(str, frame.columns))}")
    return frame[columns].drop_duplicates(features.item).sort_values(features.item).reset_index(drop=True)


def _is_flag(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and bool(values.dropna().isin([0, 1]).all())


@dataclass(frozen=True)
class ContentColumns:
    """What each column block of a content matrix is: text dims, category columns, number columns."""

    text_dims: int
    categories: list[str]
    numbers: list[str]

    @property
    def width(self) -> int:
        return self.text_dims + len(self.categories) + 2 * len(self.numbers)


def category_block(items: pd.DataFrame, features: ColdStartFeatures) -> tuple[np.ndarray, list[str]]:
    """Flags as they are, other category columns one-hot over the table's values (missing: all 0)."""
    blocks, names = [], []
    for column in features.item_categories:
        values = items[column]
        if _is_flag(values):
            blocks.append(values.fillna(0).to_numpy("float32")[:, None])
            names.append(column)
            continue
        levels = sorted(values.dropna().astype(str).unique())
        codes = pd.Categorical(values.astype("string"), categories=levels).codes
        onehot = np.zeros((len(items), len(levels)), "float32")
        onehot[np.flatnonzero(codes >= 0), codes[codes >= 0]] = 1.0
        blocks.append(onehot)
        names += [f"{column}[{i}]" for i in range(len(levels))]
    return (np.hstack(blocks) if blocks else np.zeros((len(items), 0), "float32")), names


def number_block(items: pd.DataFrame, features: ColdStartFeatures) -> np.ndarray:
    """Each number standardised on the table (missing: 0) beside its missing flag."""
    blocks = []
    for column in features.item_numbers:
        values = pd.to_numeric(items[column], errors="coerce").to_numpy("float64")
        known = np.isfinite(values)
        mean = values[known].mean() if known.any() else 0.0
        std = values[known].std() if known.sum() > 1 else 1.0
        standard = np.where(known, (values - mean) / (std if std > 0 else 1.0), 0.0)
        blocks.append(np.column_stack([standard, ~known]).astype("float32"))
    return np.hstack(blocks) if blocks else np.zeros((len(items), 0), "float32")


def text_block(items: pd.DataFrame, features: ColdStartFeatures, params: ColdStartTrain) -> np.ndarray:
    """The item texts' sentence-encoder vectors (frozen, cached) times ``text_scale``."""
    if not features.item_text:
        return np.zeros((len(items), 0), "float32")
    if params.encoder is None:
        from components.errors import ConfigError

        raise ConfigError("features.item_text names text attributes but train.encoder is not set; "
                          "add the encoder section (see text_intents) or drop item_text")
    from components.models.encoder import encode_frozen
    from components.models.scorer import as_strings

    texts = items[list(features.item_text)].astype("string").fillna("").agg(". ".join, axis=1)
    _, vectors = encode_frozen(params.encoder, list(as_strings(texts.to_numpy())))
    return (np.asarray(vectors, "float32") * params.text_scale).astype("float32")


def content_matrix(items: pd.DataFrame, features: ColdStartFeatures,
                   params: ColdStartTrain) -> tuple[np.ndarray, ContentColumns]:
    """The item tower's input: one row per item of ``items`` (an ``item_table``)."""
    text = text_block(items, features, params)
    categories, names = category_block(items, features)
    numbers = number_block(items, features)
    if text.shape[1] + categories.shape[1] + numbers.shape[1] == 0:
        from components.errors import ConfigError

        raise ConfigError("features names no item attribute (item_text, item_categories, item_numbers): "
                          "the item tower needs at least one")
    return (np.hstack([text, categories, numbers]).astype("float32"),
            ContentColumns(text.shape[1], names, list(features.item_numbers)))


def build_coldstart(train: pd.DataFrame, features: ColdStartFeatures, params: ColdStartTrain, seed: int, *,
                    label: str = "", content: np.ndarray | None = None):
    """The trainable hybrid network over the items of ``train`` (a history bag in; hybrid logits
    then content-only logits out); ``content`` is their content matrix (default: computed)."""
    from components.models.coldstart_layers import build_hybrid
    from components.models.recommender import check_ids

    check_ids(train, features)  # type: ignore[arg-type]
    if content is None:
        content, _ = content_matrix(item_table(train, features), features, params)
    return build_hybrid(content, params, seed)
