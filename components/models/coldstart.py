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
    # items with history: the weight of the collaborative model's (recommend's Mult-DAE, trained
    # beside the hybrid) log-probabilities in the blend with the hybrid head's, the one of these
    # with the best validation nDCG@top_k
    blend_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    # each head's softmax temperature is the one of these with the best validation likelihood,
    # so that log-probabilities of items with history (blend) and without (content head) compare
    calibration_temperatures: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


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


@dataclass(frozen=True)
class ItemFeaturizer:
    """How item attributes become a content row, fitted on the training item table, so an item
    added later gets the row it would have had: the encoder settings, each category column's
    levels (None: a 0/1 flag column) and each number's mean and standard deviation. JSON-able
    (``as_dict``/``from_dict``): the registered model carries it."""

    item: str
    text: tuple[str, ...]
    categories: tuple[tuple[str, tuple[str, ...] | None], ...]
    numbers: tuple[tuple[str, float, float], ...]
    encoder: dict | None = None
    text_scale: float = 1.0

    @property
    def columns(self) -> list[str]:
        return [*self.text, *(c for c, _ in self.categories), *(c for c, _, _ in self.numbers)]

    def as_dict(self) -> dict:
        return {"item": self.item, "text": list(self.text),
                "categories": [[c, None if levels is None else list(levels)] for c, levels in self.categories],
                "numbers": [list(n) for n in self.numbers], "encoder": self.encoder, "text_scale": self.text_scale}

    @classmethod
    def from_dict(cls, state: dict) -> ItemFeaturizer:
        return cls(item=state["item"], text=tuple(state["text"]),
                   categories=tuple((c, None if levels is None else tuple(levels)) for c, levels in state["categories"]),
                   numbers=tuple((c, float(m), float(s)) for c, m, s in state["numbers"]),
                   encoder=state.get("encoder"), text_scale=float(state.get("text_scale", 1.0)))


def fit_featurizer(items: pd.DataFrame, features: ColdStartFeatures, encoder: EncoderParams | None = None,
                   text_scale: float = 1.0) -> ItemFeaturizer:
    """The featurizer of an item table (levels and number statistics measured on it)."""
    if not features.attributes:
        from components.errors import ConfigError

        raise ConfigError("features names no item attribute (item_text, item_categories, item_numbers): "
                          "the item tower needs at least one")
    if features.item_text and encoder is None:
        from components.errors import ConfigError

        raise ConfigError("features.item_text names text attributes but train.encoder is not set; "
                          "add the encoder section (see text_intents) or drop item_text")
    categories: list[tuple[str, tuple[str, ...] | None]] = []
    for column in features.item_categories:
        values = items[column]
        categories.append((column, None if _is_flag(values) else tuple(sorted(values.dropna().astype(str).unique()))))
    numbers = []
    for column in features.item_numbers:
        values = pd.to_numeric(items[column], errors="coerce").to_numpy("float64")
        known = values[np.isfinite(values)]
        std = float(known.std()) if len(known) > 1 else 1.0
        numbers.append((column, float(known.mean()) if len(known) else 0.0, std if std > 0 else 1.0))
    settings = encoder.model_dump() if features.item_text and encoder is not None else None
    return ItemFeaturizer(features.item, tuple(features.item_text), tuple(categories), tuple(numbers), settings,
                          text_scale)


def check_item_rows(items: pd.DataFrame, featurizer: ItemFeaturizer, where: str) -> None:
    """ConfigError naming each attribute column of ``items`` that cannot become a content row
    (missing, a number column holding text, a 0/1 flag column holding other values) and the id
    column if ids are missing or repeated: counts and row positions (``items``' index labels),
    never the values."""
    from components.errors import ConfigError

    missing = [c for c in [featurizer.item, *featurizer.columns] if c not in items.columns]
    if missing:
        raise ConfigError(f"{where}: the item attribute column(s) {missing} are missing; the model reads "
                          f"{[featurizer.item, *featurizer.columns]} (the training item table's columns)")
    problems = []

    def rows(mask) -> str:
        positions = items.index[np.asarray(mask, bool)].tolist()
        shown = f"{positions[:5]}{', ...' if len(positions) > 5 else ''}"
        return f"{len(positions)} row(s) (at {shown} of the table, counted from 0)"

    ids = items[featurizer.item]
    if ids.isna().any() or ids.duplicated().any():
        problems.append(f"column {featurizer.item!r}: {rows(ids.isna() | ids.duplicated())} with a missing or "
                        "repeated item id; give every item one row")
    for column, _, _ in featurizer.numbers:
        values = items[column]
        numeric = pd.to_numeric(values, errors="coerce")
        if (bad := values.notna() & numeric.isna()).any():
            problems.append(f"column {column!r}: {rows(bad)} not a number; leave it empty if unknown")
    for column, levels in featurizer.categories:
        if levels is None:
            numeric = pd.to_numeric(items[column], errors="coerce")
            if (bad := items[column].notna() & ~numeric.isin([0, 1])).any():
                problems.append(f"column {column!r}: {rows(bad)} not 0 or 1 (a flag column at training)")
    if problems:
        raise ConfigError(f"{where}: {len(problems)} item attribute problem(s): " + "; ".join(problems))


def featurize_items(items: pd.DataFrame, featurizer: ItemFeaturizer) -> np.ndarray:
    """Content rows of ``items`` as the featurizer's training table would have made them: the
    texts through the frozen, cached encoder, flags as they are, other categories one-hot over the
    training levels (a new level: all 0), numbers standardised with the training statistics."""
    blocks = []
    if featurizer.text:
        from components.models.encoder import EncoderParams, encode_frozen
        from components.models.scorer import as_strings

        texts = items[list(featurizer.text)].astype("string").fillna("").agg(". ".join, axis=1)
        _, vectors = encode_frozen(EncoderParams(**featurizer.encoder or {}), list(as_strings(texts.to_numpy())))
        blocks.append(np.asarray(vectors, "float32") * featurizer.text_scale)
    for column, levels in featurizer.categories:
        values = items[column]
        if levels is None:
            blocks.append(pd.to_numeric(values, errors="coerce").fillna(0).to_numpy("float32")[:, None])
            continue
        codes = np.where(values.notna(), pd.Index(list(levels)).get_indexer(values.astype(str)), -1)
        onehot = np.zeros((len(items), len(levels)), "float32")
        onehot[np.flatnonzero(codes >= 0), codes[codes >= 0]] = 1.0
        blocks.append(onehot)
    for column, mean, std in featurizer.numbers:
        values = pd.to_numeric(items[column], errors="coerce").to_numpy("float64")
        known = np.isfinite(values)
        blocks.append(np.column_stack([np.where(known, (values - mean) / std, 0.0), ~known]))
    return np.hstack(blocks).astype("float32") if blocks else np.zeros((len(items), 0), "float32")


def category_names(featurizer: ItemFeaturizer) -> list[str]:
    """The content matrix's category columns: a flag's name, or ``column[i]`` per level."""
    return [name for column, levels in featurizer.categories
            for name in ([column] if levels is None else [f"{column}[{i}]" for i in range(len(levels))])]


def category_block(items: pd.DataFrame, features: ColdStartFeatures) -> tuple[np.ndarray, list[str]]:
    """Flags as they are, other category columns one-hot over the table's values (missing: all 0)."""
    if not features.item_categories:
        return np.zeros((len(items), 0), "float32"), []
    featurizer = fit_featurizer(items, features.model_copy(update={"item_text": (), "item_numbers": ()}))
    return featurize_items(items, featurizer), category_names(featurizer)


def number_block(items: pd.DataFrame, features: ColdStartFeatures) -> np.ndarray:
    """Each number standardised on the table (missing: 0) beside its missing flag."""
    only = features.model_copy(update={"item_text": (), "item_categories": ()})
    return featurize_items(items, fit_featurizer(items, only)) if features.item_numbers \
        else np.zeros((len(items), 0), "float32")


def content_matrix(items: pd.DataFrame, features: ColdStartFeatures,
                   params: ColdStartTrain) -> tuple[np.ndarray, ContentColumns, ItemFeaturizer]:
    """The item tower's input: one row per item of ``items`` (an ``item_table``), the column
    blocks, and the featurizer that makes the same rows for items added later."""
    featurizer = fit_featurizer(items, features, params.encoder, params.text_scale)
    content = featurize_items(items, featurizer)
    names = category_names(featurizer)
    text_dims = content.shape[1] - len(names) - 2 * len(featurizer.numbers)
    return content, ContentColumns(text_dims, names, list(features.item_numbers)), featurizer


def build_coldstart(train: pd.DataFrame, features: ColdStartFeatures, params: ColdStartTrain, seed: int, *,
                    label: str = "", content: np.ndarray | None = None):
    """The trainable hybrid network over the items of ``train`` (a history bag in; hybrid logits
    then content-only logits out); ``content`` is their content matrix (default: computed)."""
    from components.models.coldstart_layers import build_hybrid
    from components.models.recommender import check_ids

    check_ids(train, features)  # type: ignore[arg-type]
    if content is None:
        content, _, _ = content_matrix(item_table(train, features), features, params)
    return build_hybrid(content, params, seed)
