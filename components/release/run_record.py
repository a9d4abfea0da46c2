"""What a training run records in the registry, as plain data (``components.release.registry``
writes it): the run's metrics and its model version's tags."""

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
