"""What an evaluation hands to the gate, the registry and the review; the DVC metrics file."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.errors import describe_failure
from components.evaluation.compare import ComparedRows, PairedComparison

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChampionScorer:
    """The serving champion, able to score the same test rows as the challenger."""

    version: str
    score: Callable[[pd.DataFrame], np.ndarray]
    threshold: float
    # identity keys of the rows it trained on (None: unknown) and how they were found
    seen_keys: np.ndarray | None = None
    seen_note: str = ""
    # the feature columns it takes (empty: unknown)
    input_columns: tuple[str, ...] = ()
    # the metrics its own run recorded at registration (for a task whose gated quality the
    # registered model cannot re-measure, e.g. a clustering procedure on a fixed labelled set)
    recorded_metrics: Mapping[str, float] | None = None
    # its Keras model (None: not loaded here), so an evaluation can lend it the challenger's
    # embedding cache when both hold the same frozen sentence encoder (encoder.share_embeddings)
    model: Any = None


@dataclass(frozen=True)
class Evaluation:
    """Model vs baseline (vs champion) on one seeded test split."""

    metrics: dict[str, float]
    baseline_name: str
    baseline_metrics: dict[str, float]
    champion_version: str | None
    champion_metrics: dict[str, float] | None
    champion_error: str | None
    slices: list[dict]
    plots: list[Path]
    threshold: float
    test_rows: int
    seconds: float = 0.0
    # 95% bootstrap confidence intervals of the gate's metrics: name -> (low, high)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    # paired intervals on the primary metric: challenger - champion (on the test rows the champion
    # never trained on) and model - same-run baseline (on every test row)
    champion_comparison: PairedComparison | None = None
    baseline_comparison: PairedComparison | None = None
    champion_slices: list[dict] = field(default_factory=list)
    # champion training rows among the compared test rows (None: unknown) and test rows left out
    champion_rows_seen: int | None = None
    champion_rows_excluded: int = 0
    champion_note: str = ""
    # the champion cannot score this data (the columns it takes are gone): which, in one line
    schema_change: str | None = None
    # how the same-run peer was trained when not on every training row (a streamed run's sample)
    baseline_note: str = ""

    def as_json(self) -> dict:
        return {
            "model": self.metrics,
            "baseline": {"name": self.baseline_name, **self.baseline_metrics,
                         **({"note": self.baseline_note} if self.baseline_note else {})},
            "champion": (
                {"version": self.champion_version, **self.champion_metrics}
                if self.champion_metrics else None
            ),
            "threshold": self.threshold,
            "test_rows": self.test_rows,
            "slices": self.slices,
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "champion_comparison": self.champion_comparison.as_json() if self.champion_comparison else None,
            "schema_change": self.schema_change,
            "baseline_comparison": self.baseline_comparison.as_json() if self.baseline_comparison else None,
            "champion_rows_seen_in_training": self.champion_rows_seen,
            "champion_rows_excluded": self.champion_rows_excluded,
        }

    def comparison_tags(self) -> dict[str, str]:
        """Version tags of what the gate compared: champion training rows among the compared test
        rows (must be 0), rows left out, and the paired intervals vs the champion and the peer."""
        peer = self.baseline_comparison
        tags = {"eval.baseline_comparison": peer.describe() if peer else "none",
                "eval.vs_peer": peer.verdict_words() if peer else "not compared"}
        if self.champion_version is None:
            return {**tags, "eval.champion_rows_seen_in_training": "no champion"}
        return {
            **tags,
            "eval.champion_rows_seen_in_training": "unknown" if self.champion_rows_seen is None else str(self.champion_rows_seen),
            "eval.champion_rows_excluded": str(self.champion_rows_excluded),
            "eval.champion_comparison": (self.champion_comparison.describe() if self.champion_comparison
                                         else f"none: {self.champion_error or 'not compared'}")[:5000],
        }


def measure_champion(
    champion: ChampionScorer | None, measure: Callable[[ChampionScorer], dict[str, float]], rows: str = "test split",
) -> tuple[dict[str, float] | None, str | None]:
    """The champion's metrics on the same rows, or why it could not be scored (a champion with
    another input schema must not stop the run; the gate then fails safe)."""
    if champion is None:
        return None, None
    try:
        return measure(champion), None
    except Exception as exc:
        error = f"champion v{champion.version} could not score the {rows}: {describe_failure(exc)}"
        logger.warning(error)
        return None, error


def compared_fields(compared: ComparedRows | None) -> dict:
    """The Evaluation fields that say which test rows the champion was compared on."""
    if compared is None:
        return {}
    return {"champion_rows_seen": compared.seen_in_training, "champion_rows_excluded": compared.excluded,
            "champion_note": compared.note}


def gate_metric_names(config) -> list[str]:
    gate = config.params.gate
    return list(dict.fromkeys((gate.primary_metric, *gate.floors)))


def write_metrics_json(evaluation: Evaluation, path: Path) -> Path:
    """The DVC metrics file (``reports/<use_case>/metrics.json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(evaluation.as_json()), indent=2, sort_keys=True) + "\n")
    return path


def _finite(value):
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
