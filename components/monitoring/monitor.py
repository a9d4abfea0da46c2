"""Drift monitoring: the newest data against the champion's training snapshot, and the retrain guard."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from components.config import MonitorParams, SplitParams
from components.monitoring.drift import feature_shift, label_shift, psi_categorical, psi_numeric

LAST_RETRAIN_TAG = "monitor.last_drift_retrain_at"


@dataclass(frozen=True)
class DriftReport:
    features: list[dict]
    label: dict
    score_psi: float | None
    reasons: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.reasons)

    def table(self) -> list[dict]:
        rows = [{"what": r["column"], "kind": r["kind"], "psi": round(r["psi"], 4), "reading": r["level"]} for r in self.features]
        if self.label:
            rows.append({"what": f"label {self.label['label']}", "kind": "label rate", "psi": round(self.label["psi"], 4), "reading": ""})
        if self.score_psi is not None:
            rows.append({"what": "champion scores", "kind": "score distribution", "psi": round(self.score_psi, 4), "reading": ""})
        return rows


def drift_columns(columns: list[str], label: str | None, split: SplitParams) -> list[str]:
    """The validated columns whose shift counts as drift: all but the label and the columns that
    place rows in time or in groups for the split (a session id, a timestamp, the official split
    marker), whose values change between snapshots by construction."""
    bookkeeping = {label, split.time_column}
    if split.method in ("official", "session_time"):
        bookkeeping.add(split.column)
    return [c for c in columns if c not in bookkeeping]


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    label: str | None,
    thresholds: MonitorParams,
    score: Callable[[pd.DataFrame], np.ndarray | None] | None = None,
) -> DriftReport:
    """PSI per feature, the label's PSI and (with ``score``) the PSI of the champion's scores on
    both snapshots; every threshold crossed is a reason to retrain."""
    features = feature_shift(reference, current, columns)
    labels = label_shift(reference, current, label)
    reasons = [f"{r['column']}: PSI {r['psi']:.3f} > {thresholds.feature_psi_threshold}"
               for r in features if r["psi"] > thresholds.feature_psi_threshold]
    if labels and labels["psi"] > thresholds.label_psi_threshold:
        reasons.append(f"label {label}: PSI {labels['psi']:.3f} > {thresholds.label_psi_threshold}")
    score_psi = None
    if score is not None:
        before, after = pd.Series(score(reference)), pd.Series(score(current))
        # an integer score is a class (e.g. a topic id): its shares shift, not its quantiles
        categorical = pd.api.types.is_integer_dtype(before)
        score_psi = psi_categorical(before, after) if categorical else psi_numeric(before, after)
        if score_psi > thresholds.score_psi_threshold:
            reasons.append(f"champion scores: PSI {score_psi:.3f} > {thresholds.score_psi_threshold}")
    return DriftReport(features=features, label=labels, score_psi=score_psi, reasons=reasons)


def champion_scores(scorer) -> Callable[[pd.DataFrame], np.ndarray | None]:
    """Score raw rows with the champion's compiled scorer: the probability, or the top class's."""
    def score(frame: pd.DataFrame):
        outputs = scorer.score_outputs({name: frame[name].to_numpy() for name in scorer.spec})
        chosen = outputs.get("output", outputs.get("probability"))
        return None if chosen is None else chosen.reshape(-1)
    return score


def retrain_allowed(last_retrain_at: str | None, now: datetime, min_hours: float) -> tuple[bool, str]:
    """Guard rail: at most one drift-triggered retrain per ``min_hours`` window (pure)."""
    if not last_retrain_at:
        return True, "no drift-triggered retrain yet"
    last = datetime.fromisoformat(last_retrain_at)
    if now - last < timedelta(hours=min_hours):
        return False, f"a drift-triggered retrain already ran at {last_retrain_at} (window {min_hours} h)"
    return True, f"last drift-triggered retrain at {last_retrain_at}, outside the {min_hours} h window"


def utc_now() -> datetime:
    return datetime.now(UTC)
