"""Uplift of a randomised treatment: Qini curve, area under it and the effect in the top x%.

Rows are ranked by predicted uplift (highest first). At each depth the Qini curve counts the
extra outcomes the treatment caused among the rows so far: treated outcomes minus control
outcomes scaled to the treated count, ``Y_t(k) - Y_c(k) * N_t(k) / N_c(k)`` (Radcliffe 2007),
here divided by the number of treated rows in all, so the curve ends at the average effect per
treated row. ``auuc`` is the area under that curve over the share of rows targeted; ``qini`` is
that area minus the random-targeting diagonal's (0 for random ranking, above 0 when the ranking
finds the responders). Only comparable on the same rows.
"""

from __future__ import annotations

import numpy as np


def qini_curve(outcome: np.ndarray, treated: np.ndarray, uplift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share of rows targeted, extra outcomes per treated row), from 0 to every row."""
    order = np.argsort(-np.asarray(uplift, dtype="float64"), kind="stable")
    y, t = np.asarray(outcome, dtype="float64")[order], np.asarray(treated, dtype=bool)[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * ~t)
    with np.errstate(divide="ignore", invalid="ignore"):
        extra = np.where(n_c > 0, y_t - y_c * n_t / np.maximum(n_c, 1), y_t)
    total_treated = max(int(t.sum()), 1)
    return (np.concatenate([[0.0], np.arange(1, len(y) + 1) / max(len(y), 1)]),
            np.concatenate([[0.0], extra / total_treated]))


def uplift_areas(outcome: np.ndarray, treated: np.ndarray, uplift: np.ndarray) -> dict[str, float]:
    """``auuc`` (area under the Qini curve) and ``qini`` (that minus random targeting's)."""
    treated = np.asarray(treated, dtype=bool)
    if treated.all() or not treated.any():
        raise ValueError("uplift needs treated and control rows")
    share, extra = qini_curve(outcome, treated, uplift)
    area = float(np.trapezoid(extra, share))
    return {"auuc": area, "qini": area - float(extra[-1]) / 2}


def effect_in_top(outcome: np.ndarray, treated: np.ndarray, uplift: np.ndarray, fraction: float) -> float:
    """Outcome rate of treated minus control rows among the top ``fraction`` by uplift (NaN when
    an arm is absent there): what treating exactly those rows adds per treated row."""
    order = np.argsort(-np.asarray(uplift, dtype="float64"), kind="stable")[: max(int(round(len(uplift) * fraction)), 1)]
    return treatment_effect(np.asarray(outcome)[order], np.asarray(treated, dtype=bool)[order])


def treatment_effect(outcome: np.ndarray, treated: np.ndarray) -> float:
    """Outcome rate of the treated rows minus that of the control rows (NaN when an arm is absent)."""
    treated = np.asarray(treated, dtype=bool)
    if treated.all() or not treated.any():
        return float("nan")
    outcome = np.asarray(outcome, dtype="float64")
    return float(outcome[treated].mean() - outcome[~treated].mean())
