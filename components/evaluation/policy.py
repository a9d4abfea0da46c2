"""Off-policy evaluation of a slot policy from logged impressions: IPW, self-normalised IPW and
doubly robust estimates of the CTR the policy would get, with bootstrap intervals, and the check
of the estimators on a logged policy whose on-policy CTR is known (the ground truth).

Every row is one logged impression: the item the logging policy put into a position, its
probability of doing so (``logged``), and the click. A target policy is given by its probability
of that same item in that position for that user (``target``) and, for the doubly robust
estimate, the click model's expected clicks of the logged item (``expected``) and of the target
policy's whole distribution (``target_expected``: sum over items of probability x click rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.evaluation.compare import PairedComparison

ESTIMATORS = ("ipw", "snipw", "dr")


@dataclass(frozen=True)
class LoggedFeedback:
    """The impressions a policy is evaluated on, and the target policy's view of each."""

    clicks: np.ndarray
    logged: np.ndarray
    target: np.ndarray
    expected: np.ndarray
    target_expected: np.ndarray

    def __post_init__(self) -> None:
        sizes = {len(np.asarray(v)) for v in (self.clicks, self.logged, self.target, self.expected, self.target_expected)}
        if len(sizes) != 1:
            raise ValueError("every array of the logged feedback must hold one value per impression")
        if np.any(np.asarray(self.logged) <= 0):
            raise ValueError("a logged propensity is 0 or negative: the logging policy's probabilities must be > 0")

    @property
    def rows(self) -> int:
        return len(self.clicks)


def estimate_ctr(estimator: str, feedback: LoggedFeedback, rows: np.ndarray | None = None) -> float:
    """The target policy's CTR by ``estimator`` (ipw | snipw | dr) on the impressions ``rows``
    picks (None: all). SNIPW of impressions where the target never shows the logged item is NaN."""
    pick = slice(None) if rows is None else rows
    clicks = np.asarray(feedback.clicks, dtype="float64")[pick]
    weights = np.asarray(feedback.target, dtype="float64")[pick] / np.asarray(feedback.logged, dtype="float64")[pick]
    if len(clicks) == 0:
        return float("nan")
    if estimator == "ipw":
        return float(np.mean(weights * clicks))
    if estimator == "snipw":
        total = weights.sum()
        return float((weights * clicks).sum() / total) if total > 0 else float("nan")
    if estimator == "dr":
        expected = np.asarray(feedback.expected, dtype="float64")[pick]
        direct = np.asarray(feedback.target_expected, dtype="float64")[pick]
        return float(np.mean(direct + weights * (clicks - expected)))
    raise ValueError(f"unknown off-policy estimator {estimator!r}; known: {', '.join(ESTIMATORS)}")


def estimate_all(feedback: LoggedFeedback, rows: np.ndarray | None = None, prefix: str = "ctr_") -> dict[str, float]:
    """Every estimator's CTR, named ``<prefix><estimator>``."""
    return {f"{prefix}{name}": estimate_ctr(name, feedback, rows) for name in ESTIMATORS}


def logged_ctr(clicks: np.ndarray, rows: np.ndarray | None = None) -> float:
    """The logging policy's own CTR on the impressions (the baseline a new policy must beat)."""
    values = np.asarray(clicks, dtype="float64")
    values = values if rows is None else values[rows]
    return float(values.mean()) if len(values) else float("nan")


def effective_sample_size(feedback: LoggedFeedback) -> float:
    """(sum w)^2 / sum w^2 of the importance weights: how many impressions the estimate really
    rests on (a deterministic policy matches the logged item on few of them)."""
    weights = np.asarray(feedback.target, dtype="float64") / np.asarray(feedback.logged, dtype="float64")
    squares = float(np.sum(weights ** 2))
    return float(weights.sum() ** 2 / squares) if squares > 0 else 0.0


def context_free_distribution(
    logs: pd.DataFrame, position: str, item: str, propensity: str, positions: int, items: list[int], method: str,
) -> np.ndarray:
    """A logged policy that ignores the user, as (positions, items) probabilities per position,
    from its own logs: ``frequency`` — how often it chose each item in each position (the time
    average of its changing probabilities, unbiased); ``mean_propensity`` — the mean logged
    probability of each item where it was chosen (biased toward the times it was likely)."""
    index = {value: column for column, value in enumerate(items)}
    table = np.zeros((positions, len(items)))
    slots = logs[position].astype(int).to_numpy() - 1
    columns = np.array([index.get(int(v), -1) for v in logs[item].to_numpy()])
    known = (columns >= 0) & (slots >= 0) & (slots < positions)
    if method == "frequency":
        np.add.at(table, (slots[known], columns[known]), 1.0)
    elif method == "mean_propensity":
        sums, counts = np.zeros_like(table), np.zeros_like(table)
        np.add.at(sums, (slots[known], columns[known]), logs[propensity].to_numpy(dtype="float64")[known])
        np.add.at(counts, (slots[known], columns[known]), 1.0)
        table = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    else:
        raise ValueError(f"unknown logged-policy distribution method {method!r}; known: frequency, mean_propensity")
    totals = table.sum(axis=1, keepdims=True)
    return np.divide(table, totals, out=np.full_like(table, 1.0 / len(items)), where=totals > 0)


def relative_error(estimate: float, truth: float) -> float:
    """|estimate - truth| / truth (NaN when the truth is 0 or either is undefined)."""
    if not (np.isfinite(estimate) and np.isfinite(truth)) or truth == 0:
        return float("nan")
    return float(abs(estimate - truth) / truth)


def ground_truth_metrics(feedback: LoggedFeedback, truth: float, prefix: str) -> dict[str, float]:
    """Each estimator's estimate of a policy whose on-policy CTR ``truth`` is known, and its
    relative error: ``<prefix>_on_policy_ctr``, ``<prefix>_ctr_<estimator>``, ``<prefix>_rel_error_<estimator>``."""
    estimates = estimate_all(feedback, prefix=f"{prefix}_ctr_")
    errors = {f"{prefix}_rel_error_{name}": relative_error(estimates[f"{prefix}_ctr_{name}"], truth)
              for name in ESTIMATORS}
    return {f"{prefix}_on_policy_ctr": truth, **estimates, **errors}


def against_fixed(metric: str, estimator: str, feedback: LoggedFeedback, fixed: float, rounds: int,
                  seed: int) -> PairedComparison:
    """The estimate minus a fixed number (the champion's recorded estimate), with the bootstrap
    interval of the estimate shifted by it: its lower bound is the estimate's lower bound minus
    ``fixed``. Nothing is paired: the fixed side has no resamples."""
    point = estimate_ctr(estimator, feedback)
    rng = np.random.default_rng(seed)
    samples = np.array([estimate_ctr(estimator, feedback, rng.integers(0, feedback.rows, feedback.rows))
                        for _ in range(rounds)]) if feedback.rows else np.zeros(0)
    samples = samples[np.isfinite(samples)]
    nan = float("nan")
    if len(samples) < max(1, rounds // 2) or not np.isfinite(point):
        return PairedComparison(metric, feedback.rows, point, fixed, point - fixed, nan, nan, nan, len(samples))
    p_value = float((np.sum(samples <= fixed) + 1) / (len(samples) + 1))
    return PairedComparison(metric, feedback.rows, point, fixed, point - fixed, float(np.percentile(samples, 2.5)) - fixed,
                            float(np.percentile(samples, 97.5)) - fixed, p_value, len(samples))


def position_slices(positions: np.ndarray, clicks: np.ndarray, feedback: LoggedFeedback,
                    estimator: str) -> list[dict]:
    """Per position: impressions, clicks, the logged CTR and the policy's estimated CTR there."""
    slices = []
    for value in sorted(set(np.asarray(positions).tolist())):
        rows = np.flatnonzero(np.asarray(positions) == value)
        slices.append({"slice": "position", "value": str(value), "rows": len(rows),
                       "clicks": int(np.asarray(clicks)[rows].sum()), "logged_ctr": logged_ctr(clicks, rows),
                       f"ctr_{estimator}": estimate_ctr(estimator, feedback, rows)})
    return slices


def per_thousand(value: float) -> str:
    """A CTR as clicks per 1,000 impressions (for reviews)."""
    return f"{1000 * value:.2f}" if np.isfinite(value) else "undefined"


@dataclass(frozen=True)
class LoggedPolicy:
    """The same-run peer of a new slot policy: the policy that logged the impressions, whose
    CTR is simply its clicks over its impressions."""

    name: str

    def ctr(self, clicks: np.ndarray, rows: np.ndarray | None = None) -> float:
        return logged_ctr(clicks, rows)


def fit_logged_policy(policy_name: str) -> LoggedPolicy:
    return LoggedPolicy(f"the logged {policy_name} policy")
