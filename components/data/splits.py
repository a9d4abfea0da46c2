"""Splits and the feature description shared by training, evaluation and serving."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Splits:
    """Seeded train / validation / test frames (index reset, so row order is the only identity)."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    # each split's row identity keys (``row_keys``), when the split assigned rows by key
    keys: dict[str, np.ndarray] | None = None

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


# a stratified hold-out puts at least one row of a class on each side: rarer classes stay in train
MIN_STRATIFIED_ROWS = 2


def stratified_holdout(frame: pd.DataFrame, label: str, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, held out): ``fraction`` of the rows held out, stratified by ``label``; the rows of a
    class with fewer than MIN_STRATIFIED_ROWS rows are all kept (sklearn cannot stratify them)."""
    counts = frame[label].astype(str).map(frame[label].astype(str).value_counts())
    rare = (counts < MIN_STRATIFIED_ROWS).to_numpy()
    common = frame[~rare]
    classes = common[label].nunique()
    held_rows = int(np.ceil(len(common) * fraction))
    if classes > min(held_rows, len(common) - held_rows):
        from components.errors import DataValidationError

        raise DataValidationError(label, [
            f"a stratified split of {len(common)} rows holds out {held_rows} (fraction {fraction}), too few "
            f"for one row of each of the {classes} classes of {label!r} on each side; add rows or lower the fraction"])
    kept, held = train_test_split(common, test_size=fraction, random_state=seed, stratify=common[label])
    return (pd.concat([kept, frame[rare]]) if rare.any() else kept), held


def split_frame(
    frame: pd.DataFrame, label: str, test_fraction: float, validation_fraction: float, seed: int
) -> Splits:
    """Stratified, seeded split: the test split depends only on the data and the seed; a class
    too rare to stratify stays in train."""
    rest, test = stratified_holdout(frame, label, test_fraction, seed)
    train, validation = stratified_holdout(rest, label, validation_fraction, seed)
    return Splits(*(part.reset_index(drop=True) for part in (train, validation, test)))


def check_split_classes(splits: Splits, label: str, use_case: str, min_train_rows: int = 1,
                        every_side: bool = False) -> None:
    """Raise DataValidationError (counts only, never a label value) when a class of the validation
    or test split has fewer than ``min_train_rows`` training rows, or, with ``every_side``, when a
    class of the data is missing from a split (a binary model needs both classes everywhere)."""
    train = splits.train[label].astype(str).value_counts()
    need = "no training row" if min_train_rows <= 1 else f"fewer than {min_train_rows} training rows"
    failures = []
    for name, part in (("validation", splits.validation), ("test", splits.test)):
        values = part[label].astype(str)
        unseen = values[~values.isin(train[train >= min_train_rows].index)]
        if len(unseen):
            failures.append(
                f"{len(unseen)} {name} row(s) are of {unseen.nunique()} {label!r} class(es) with {need}, which the "
                "model cannot learn; add rows of those classes, or use split.method: stratified (a rare class's "
                "rows stay in train)")
    if every_side:
        classes = set(train.index) | {str(v) for p in (splits.validation, splits.test) for v in p[label].unique()}
        for name, part in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
            missing = len(classes - {str(v) for v in part[label].unique()})
            if missing:
                failures.append(f"the {name} split ({len(part)} rows) has no row of {missing} of the {len(classes)} "
                                f"{label!r} classes; add rows of the rare class (or use split.method: stratified)")
    if failures:
        from components.errors import DataValidationError

        raise DataValidationError(use_case, failures)


def label_array(frame: pd.DataFrame, label: str) -> np.ndarray:
    """The label as 0/1 floats."""
    return frame[label].astype("float32").to_numpy()


def binary_labels(values: pd.Series, class_of_interest, column: str, batch: bool = False) -> pd.Series:
    """A binary label as 0/1, 1 for ``class_of_interest`` (the class worth finding). Without one,
    the label must already be 0/1 or true/false. Messages name the column and counts, never values.
    ``batch``: the values are one batch of a stream, which may hold no row of the class."""
    from components.errors import ConfigError, DataValidationError

    if values.isna().any():
        raise DataValidationError(column, [f"label column {column!r} has {int(values.isna().sum())} missing values; "
                                           "drop those rows (data.transforms: drop_null) or fill them"])
    if class_of_interest is None:
        numeric = pd.to_numeric(values, errors="coerce") if values.dtype != bool else values.astype(int)
        if numeric.isna().any() or not set(numeric.unique()) <= {0, 1}:
            raise ConfigError(
                f"label column {column!r} holds {values.nunique()} distinct values that are not 0/1 or true/false; "
                "set card.class_of_interest in params.yaml to the label value worth finding")
        return numeric.astype("int64")
    if isinstance(class_of_interest, bool) or values.dtype == bool:
        hits = values.astype(str).str.lower() == str(class_of_interest).lower()
    elif isinstance(class_of_interest, int | float) and pd.api.types.is_numeric_dtype(values):
        hits = values == class_of_interest
    else:
        hits = values.astype(str) == str(class_of_interest)
    if not hits.any() and not batch:
        raise ConfigError(f"card.class_of_interest never occurs in label column {column!r} "
                          f"({values.nunique()} distinct values); set it to a value the column holds")
    return hits.astype("int64")


def encode_binary_splits(splits: Splits, label: str, class_of_interest) -> Splits:
    """Every split with its label as 0/1 for ``class_of_interest`` (row keys unchanged: they were
    computed on the rows as read, so they match the champion's). The splits are encoded together:
    a split without the class of interest is ``check_split_classes``' to report."""
    from dataclasses import replace

    parts = (splits.train, splits.validation, splits.test)
    encoded = binary_labels(pd.concat([p[label] for p in parts], ignore_index=True), class_of_interest, label)
    edges = np.cumsum([0, *(len(p) for p in parts)])
    train, validation, test = (part.assign(**{label: encoded.iloc[edges[i]:edges[i + 1]].to_numpy()})
                               for i, part in enumerate(parts))
    return replace(splits, train=train, validation=validation, test=test)


def holdout_per_user(frame: pd.DataFrame, user: str, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out ``fraction`` of each user's rows at random (seeded): (kept, held out)."""
    order = np.random.default_rng(seed).permutation(len(frame))
    shuffled = frame.iloc[order]
    rank = shuffled.groupby(user).cumcount()
    size = shuffled.groupby(user)[user].transform("size")
    held = (rank >= np.round(size * (1 - fraction))).to_numpy()
    return shuffled[~held].reset_index(drop=True), shuffled[held].reset_index(drop=True)


def per_user_split(frame: pd.DataFrame, config) -> Splits:
    """Recommenders: a seeded per-user random test split (75/25 in Microsoft Recommenders'
    benchmark); validation is carved out of each user's training rows the same way."""
    user = config.features.user
    rest, test = holdout_per_user(frame, user, config.evaluate.test_fraction, config.seed)
    train, validation = holdout_per_user(rest, user, config.train.validation_fraction, config.seed + 1)
    return Splits(train, validation, test)


# --- stable split assignment --------------------------------------------------------------------
# A row's side is a function of the row alone (its key), never of the other rows, so as the
# snapshot grows (replay, backfill, new data) no row moves between train, validation and test,
# and a champion is never scored on rows it trained on.

# the hash key of row identities: fixed, so keys compare across runs, seeds and split settings
IDENTITY_KEY = "funnel-rowkey-01"
# the version tag holding the split settings a model was trained with (``split_spec``)
SPLIT_TAG = "split.spec"
TRAIN, VALIDATION, TEST = 0, 1, 2


def row_keys(frame: pd.DataFrame, key_columns: tuple[str, ...] = ()) -> np.ndarray:
    """One uint64 identity per row: a hash of ``key_columns``, or of the whole row (every column,
    in name order) when none are configured. Identical rows share a key, so duplicates stay together."""
    columns = list(key_columns) or sorted(frame.columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        from components.errors import ConfigError

        raise ConfigError(f"split.key_columns {missing} are not columns of the data; columns are {sorted(frame.columns)}")
    hashed = pd.util.hash_pandas_object(frame[columns], index=False, hash_key=IDENTITY_KEY)
    return hashed.to_numpy(dtype="uint64")


def unit_interval(keys: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per key, mixed with ``seed`` (splitmix64's finaliser)."""
    with np.errstate(over="ignore"):
        x = np.asarray(keys, dtype="uint64") ^ np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype("float64") / float(2**53)


def hash_sides(keys: np.ndarray, test_fraction: float, validation_fraction: float, seed: int) -> np.ndarray:
    """TRAIN / VALIDATION / TEST per key: ``test_fraction`` of keys go to test, then
    ``validation_fraction`` of the rest to validation (the proportions ``split_frame`` uses)."""
    u = unit_interval(keys, seed)
    validation_edge = test_fraction + (1 - test_fraction) * validation_fraction
    return np.where(u < test_fraction, TEST, np.where(u < validation_edge, VALIDATION, TRAIN)).astype("int8")


def time_sides(times: pd.Series, test_fraction: float, validation_fraction: float) -> np.ndarray:
    """Train on the past, test on the newest period: the newest ``test_fraction`` of rows are the
    test split, the newest ``validation_fraction`` of the rest the validation split (ties share a side)."""
    rank = times.rank(method="max", pct=True).to_numpy()
    validation_edge = 1 - test_fraction
    train_edge = validation_edge * (1 - validation_fraction)
    return np.where(rank > validation_edge, TEST, np.where(rank > train_edge, VALIDATION, TRAIN)).astype("int8")


def session_time_sides(sessions: pd.Series, times: pd.Series, test_period_s: float,
                       validation_period_s: float) -> np.ndarray:
    """TRAIN / VALIDATION / TEST per row by its session's last time: sessions ending within the
    newest ``test_period_s`` of the data are the test, those ending within ``validation_period_s``
    before that the validation split (a session is never cut across sides)."""
    times = pd.to_numeric(times)
    last = times.groupby(sessions.to_numpy()).transform("max").to_numpy()
    test_edge = float(times.max()) - test_period_s if len(times) else 0.0
    validation_edge = test_edge - validation_period_s
    return np.where(last > test_edge, TEST, np.where(last > validation_edge, VALIDATION, TRAIN)).astype("int8")


def stratified_sides(keys: np.ndarray, labels: pd.Series, test_fraction: float, validation_fraction: float,
                     seed: int) -> np.ndarray:
    """Like ``hash_sides``, but the row hashes are ranked within each label value, so each side
    holds every class in the data's proportions (a row may change side as the data grows)."""
    u = pd.Series(unit_interval(keys, seed), index=labels.index)
    rank = u.groupby(labels.astype(str).to_numpy()).rank(method="first", pct=True).to_numpy()
    validation_edge = test_fraction + (1 - test_fraction) * validation_fraction
    return np.where(rank <= test_fraction, TEST, np.where(rank <= validation_edge, VALIDATION, TRAIN)).astype("int8")


def assign_sides(frame: pd.DataFrame, split, test_fraction: float, validation_fraction: float, seed: int,
                 keys: np.ndarray | None = None, label: str | None = None) -> np.ndarray:
    """The side of every row under the ``split`` section of a use case (``SplitParams``);
    ``keys``: the rows' ``row_keys`` under ``split.key_columns`` when already computed;
    ``label``: the column a ``stratified`` split keeps in proportion."""
    if split.method == "session_time":
        missing = [c for c in (split.column, split.time_column) if c not in frame.columns]
        if missing:
            from components.errors import ConfigError

            raise ConfigError(f"split.column / split.time_column {missing} are not columns of the data; "
                              f"columns are {sorted(frame.columns)}")
        return session_time_sides(frame[split.column], frame[split.time_column], split.test_period_s,
                                  split.validation_period_s)
    if split.method == "time":
        if split.time_column not in frame.columns:
            from components.errors import ConfigError

            raise ConfigError(f"split.time_column {split.time_column!r} is not a column of the data; "
                              f"columns are {sorted(frame.columns)}")
        return time_sides(frame[split.time_column], test_fraction, validation_fraction)
    keys = row_keys(frame, split.key_columns) if keys is None else keys
    if split.method == "hash":
        return hash_sides(keys, test_fraction, validation_fraction, seed)
    if split.method == "stratified":
        if label is None or label not in frame.columns:
            from components.errors import ConfigError

            raise ConfigError("split.method stratified needs the label column (validate.label) in the data")
        return stratified_sides(keys, frame[label], test_fraction, validation_fraction, seed)
    if split.method == "official":
        # the data set's own test rows; validation carved out of the rest by key, so it is stable too
        rest = hash_sides(keys, 0.0, validation_fraction, seed)
        return np.where(frame[split.column].astype(str).to_numpy() == "test", TEST, rest).astype("int8")
    raise ValueError(f"split method {split.method!r} has no stable side assignment")


def split_rows(frame: pd.DataFrame, split, test_fraction: float, validation_fraction: float, seed: int,
               label: str | None = None) -> Splits:
    """Train / validation / test frames by ``assign_sides``, each with its rows' identity keys."""
    keys = row_keys(frame, split.key_columns)
    sides = assign_sides(frame, split, test_fraction, validation_fraction, seed, keys, label)
    parts = {name: side for name, side in (("train", TRAIN), ("validation", VALIDATION), ("test", TEST))}
    frames = {name: frame[sides == side].reset_index(drop=True) for name, side in parts.items()}
    return Splits(frames["train"], frames["validation"], frames["test"],
                  keys={name: keys[sides == side] for name, side in parts.items()})


def split_use_case(frame: pd.DataFrame, config) -> Splits:
    """A use case's split by its ``split`` section, ``evaluate.test_fraction`` and
    ``train.validation_fraction`` (the default split of every task kind)."""
    return split_rows(frame, config.params.split, config.evaluate.test_fraction, config.train.validation_fraction,
                      split_seed(config), config.label)


def split_spec(config) -> dict:
    """A use case's split settings, as recorded on every registered version (``split.spec``)."""
    return {**config.params.split.model_dump(mode="json"), "test_fraction": config.evaluate.test_fraction,
            "validation_fraction": config.train.validation_fraction, "seed": split_seed(config),
            "label": config.label}


def split_seed(config) -> int:
    """The seed of a use case's row assignment: ``split.seed``, else ``common.seed``."""
    seed = config.params.split.seed
    return config.seed if seed is None else seed
