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

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def split_frame(
    frame: pd.DataFrame, label: str, test_fraction: float, validation_fraction: float, seed: int
) -> Splits:
    """Stratified, seeded split: the test split depends only on the data and the seed."""
    rest, test = train_test_split(
        frame, test_size=test_fraction, random_state=seed, stratify=frame[label]
    )
    train, validation = train_test_split(
        rest, test_size=validation_fraction, random_state=seed, stratify=rest[label]
    )
    return Splits(*(part.reset_index(drop=True) for part in (train, validation, test)))


def label_array(frame: pd.DataFrame, label: str) -> np.ndarray:
    """The label as 0/1 floats."""
    return frame[label].astype("float32").to_numpy()


def stratified_split(frame: pd.DataFrame, config) -> Splits:
    """The default split of a use case: seeded and stratified on its label."""
    return split_frame(
        frame, config.label, config.evaluate.test_fraction, config.train.validation_fraction, config.seed
    )


def official_split(frame: pd.DataFrame, config, column: str = "split") -> Splits:
    """Keep the data set's own test split; carve validation out of its train split, stratified."""
    test = frame[frame[column] == "test"]
    rest = frame[frame[column] != "test"]
    train, validation = train_test_split(
        rest, test_size=config.train.validation_fraction, random_state=config.seed, stratify=rest[config.label]
    )
    return Splits(*(part.reset_index(drop=True) for part in (train, validation, test)))


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
