"""What a training run records in the registry, as plain data (``components.release.registry``
writes it): the run's metrics, its model version's tags, and the rows its dataset's schema is read from."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from components.data.splits import SPLIT_TAG, split_spec
from components.release.saved_model import THRESHOLD_TAG


def run_metrics(trained, evaluation) -> dict[str, float]:
    """The model's, the same-run peer's (``baseline_``) and the champion's (``champion_``) finite
    metrics, and the fit's bookkeeping (seconds, epochs, the decision threshold)."""
    metrics = {k: v for k, v in evaluation.metrics.items() if np.isfinite(v)}
    metrics |= {f"baseline_{k}": v for k, v in evaluation.baseline_metrics.items() if np.isfinite(v)}
    if evaluation.champion_metrics:
        metrics |= {f"champion_{k}": v for k, v in evaluation.champion_metrics.items() if np.isfinite(v)}
    return metrics | {
        "fit_seconds": trained.fit.fit_seconds,
        "epochs_run": trained.fit.epochs_run,
        "best_epoch": trained.fit.best_epoch,
        "evaluate_seconds": evaluation.seconds,
        **({"decision_threshold": trained.threshold} if np.isfinite(trained.threshold) else {}),
    }


def version_tags(run_id: str, run_tags: dict[str, str], config, data_version, trained, evaluation) -> dict[str, Any]:
    """The registered version's tags: lineage, threshold, metrics, peer, split and comparisons."""
    return {
        "run_id": run_id,
        "data_md5": data_version.md5,
        "git_commit": run_tags["git_commit"],
        "prefect_flow_run_id": run_tags["prefect_flow_run_id"],
        THRESHOLD_TAG: f"{trained.threshold:.6f}",
        "baseline.name": evaluation.baseline_name,
        "champion_at_registration": evaluation.champion_version or "none",
        "data_remote": data_version.remote,
        **{f"metric.{k}": f"{v:.6f}" for k, v in evaluation.metrics.items() if np.isfinite(v)},
        **{f"baseline.{k}": f"{v:.6f}" for k, v in evaluation.baseline_metrics.items() if np.isfinite(v)},
        SPLIT_TAG: json.dumps(split_spec(config), sort_keys=True),
        **evaluation.comparison_tags(),
    }


def keep_distinct_values(frame):
    """A frame with ``frame``'s columns and dtypes whose column each holds that column's distinct
    values (a NumPy number column: its first value and its first NaN, if any), the shorter ones
    repeating their first value: the rows MLflow infers a dataset's schema from (each column's type
    and whether it has a missing value: a function of its dtype and distinct values) instead of
    looping in Python over every value (ctr's 86,582 rows: ~2.7 s); ``frame`` itself when its column
    names repeat. pandas compares lists, dicts and arrays by value here too."""
    import pandas as pd

    if not frame.columns.is_unique:
        return frame
    firsts = {column: distinct_positions(frame[column]) for column in frame.columns}
    rows = max((len(positions) for positions in firsts.values()), default=0)
    padded = {column: np.concatenate([positions, np.full(rows - len(positions), positions[0] if len(positions) else 0)])
              for column, positions in firsts.items()}
    return pd.DataFrame({column: frame[column].iloc[padded[column]].reset_index(drop=True) for column in frame.columns})


def distinct_positions(column) -> np.ndarray:
    """Where each distinct value of ``column`` first occurs; for a NumPy number column (whose MLflow
    type is its dtype's) where its first value and its first NaN are."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":
        return np.flatnonzero((np.arange(len(column)) == 0) | column.isna().to_numpy())[:2]
    return np.flatnonzero(~column.duplicated().to_numpy())
