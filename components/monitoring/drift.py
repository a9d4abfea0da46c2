"""Distribution shift between two snapshots: PSI per feature and the label-rate shift."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

EPSILON = 1e-4
MAX_CATEGORIES = 100


def psi(expected_shares: np.ndarray, actual_shares: np.ndarray) -> float:
    """Population stability index of two distributions over the same bins."""
    e = np.clip(np.asarray(expected_shares, dtype="float64"), EPSILON, None)
    a = np.clip(np.asarray(actual_shares, dtype="float64"), EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_numeric(reference: pd.Series, current: pd.Series, bins: int = 10) -> float:
    """PSI over the reference's quantile bins (missing values are a bin of their own)."""
    ref = pd.to_numeric(reference, errors="coerce").astype("float64")
    cur = pd.to_numeric(current, errors="coerce").astype("float64")
    edges = np.unique(np.nanquantile(ref, np.linspace(0, 1, bins + 1))) if ref.notna().any() else np.array([0.0])
    edges = np.concatenate([[-np.inf], edges[1:-1], [np.inf]]) if len(edges) > 2 else np.array([-np.inf, np.inf])

    def shares(values: pd.Series) -> np.ndarray:
        counts = np.histogram(values.dropna(), bins=edges)[0]
        return np.append(counts, values.isna().sum()) / max(len(values), 1)

    return psi(shares(ref), shares(cur))


def psi_categorical(reference: pd.Series, current: pd.Series) -> float:
    """PSI over the categories of both snapshots."""
    ref, cur = reference.astype(str), current.astype(str)
    categories = sorted(set(ref.unique()) | set(cur.unique()))
    ref_shares = ref.value_counts(normalize=True).reindex(categories, fill_value=0).to_numpy()
    cur_shares = cur.value_counts(normalize=True).reindex(categories, fill_value=0).to_numpy()
    return psi(ref_shares, cur_shares)


def feature_shift(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str]) -> list[dict]:
    """PSI per column present in both snapshots: numeric by quantile bins, categorical by value,
    free text (more than 100 distinct values) by its length in characters."""
    rows = []
    for column in columns:
        if column not in reference or column not in current:
            continue
        ref, cur = reference[column], current[column]
        if pd.api.types.is_bool_dtype(ref) or (not pd.api.types.is_numeric_dtype(ref) and ref.nunique() <= MAX_CATEGORIES):
            kind, value = "categorical", psi_categorical(ref, cur)
        elif pd.api.types.is_numeric_dtype(ref):
            kind, value = "numeric", psi_numeric(ref, cur)
        else:
            kind, value = "text length", psi_numeric(ref.astype(str).str.len(), cur.astype(str).str.len())
        rows.append({"column": column, "kind": kind, "psi": value, "level": psi_level(value)})
    return rows


def psi_level(value: float) -> str:
    """The usual reading of a PSI: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift."""
    return "stable" if value < 0.1 else ("moderate" if value <= 0.25 else "major")


def label_shift(reference: pd.DataFrame, current: pd.DataFrame, label: str | None) -> dict:
    """The label's distribution in both snapshots and their PSI."""
    if label not in reference or label not in current:
        return {}
    ref = reference[label].astype(str).value_counts(normalize=True)
    cur = current[label].astype(str).value_counts(normalize=True)
    top = list(ref.index[:5])
    return {
        "label": label,
        "reference": {k: float(ref.get(k, 0.0)) for k in top},
        "current": {k: float(cur.get(k, 0.0)) for k in top},
        "psi": psi_categorical(reference[label], current[label]),
    }


# session length buckets of ``session_item_classes`` (upper edges; the last bucket is open)
SESSION_LENGTH_EDGES = (1, 2, 4, 9)
HEAD_CLICK_SHARE = 0.5


def session_item_classes(frame: pd.DataFrame, session: str, item: str, known_items: Sequence[str],
                         clicks: np.ndarray) -> np.ndarray:
    """Per click of a click log: its session's length bucket x 3 + its item's class under the
    reference clicks (0: head, the most clicked items taking half the clicks; 1: tail; 2: never
    clicked), one integer a categorical PSI compares between two logs. Item ids are compared as
    strings, as the next-item model reads them."""
    from components.models.sessions import item_strings

    if session not in frame or item not in frame:
        return np.zeros(0, dtype="int64")
    order = np.argsort(-np.asarray(clicks, dtype="float64"), kind="stable")
    shares = np.cumsum(np.asarray(clicks, dtype="float64")[order]) / max(float(np.sum(clicks)), 1.0)
    head = set(np.asarray(known_items)[order][(shares - np.asarray(clicks)[order] / max(float(np.sum(clicks)), 1.0)) < HEAD_CLICK_SHARE])
    ids = pd.Series(item_strings(frame[item].to_numpy()))
    kind = np.where(ids.isin(head), 0, np.where(ids.isin(set(known_items)), 1, 2))
    lengths = frame.groupby(session)[session].transform("size").to_numpy()
    bucket = np.searchsorted(np.asarray(SESSION_LENGTH_EDGES), lengths, side="left")
    return (bucket * 3 + kind).astype("int64")
