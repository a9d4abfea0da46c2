"""Paired comparisons: challenger vs champion, model vs baseline, on the same rows.

Both scorers are measured on the same bootstrap resamples of the same rows, so the interval is
that of the *difference* — what a promotion decision needs — not of either model alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

VERDICT_WORDS = {"better": "significantly better", "tied": "tied", "worse": "significantly worse",
                 "undefined": "not measurable (no interval)"}


@dataclass(frozen=True)
class PairedComparison:
    """``metric`` of A minus B on ``rows`` shared rows: the point difference, its 95% bootstrap
    interval and the one-sided bootstrap p-value of "A is no better than B"."""

    metric: str
    rows: int
    a: float
    b: float
    delta: float
    low: float
    high: float
    p_value: float
    rounds: int

    def verdict(self) -> str:
        """``better`` (the interval is above 0), ``worse`` (below 0), ``tied`` (it spans 0) or
        ``undefined`` (too few usable resamples: no interval)."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "undefined"
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "tied"

    def verdict_words(self) -> str:
        """The verdict as the summary, the review and the tags say it."""
        return VERDICT_WORDS[self.verdict()]

    def phrase(self, other: str) -> str:
        """``significantly better than <other>``, ``tied with <other>``, ... (A's side)."""
        joiner = "with" if self.verdict() == "tied" else ("than" if self.verdict() != "undefined" else "against")
        return f"{self.verdict_words()} {joiner} {other}"

    def describe(self) -> str:
        """One line with the numbers, for gate tags, reviews and model cards."""
        return (f"{self.metric} {self.a:.4f} vs {self.b:.4f}: Δ {self.delta:+.4f} "
                f"[95% CI {self.low:+.4f}, {self.high:+.4f}], p={self.p_value:.3f}, {self.rows} paired rows")

    def as_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def paired_bootstrap(
    metric: str, rows: int, measure: Callable[[np.ndarray | None], tuple[float, float]], rounds: int, seed: int,
) -> PairedComparison:
    """Compare two scorers on ``rows`` shared rows; ``measure(index)`` returns (A, B) on the rows
    ``index`` picks (``None``: all rows). Resamples where the metric is undefined (one class only)
    are skipped; with fewer than half of them usable the interval is NaN (never a pass)."""
    a, b = measure(None)
    nan = float("nan")
    if rows == 0 or not (math.isfinite(a) and math.isfinite(b)):
        return PairedComparison(metric, rows, a, b, a - b, nan, nan, nan, 0)
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(rounds):
        try:
            resampled_a, resampled_b = measure(rng.integers(0, rows, rows))
        except ValueError:
            continue
        if math.isfinite(resampled_a) and math.isfinite(resampled_b):
            deltas.append(resampled_a - resampled_b)
    if len(deltas) < max(1, rounds // 2):
        return PairedComparison(metric, rows, a, b, a - b, nan, nan, nan, len(deltas))
    values = np.asarray(deltas)
    p_value = float((np.sum(values <= 0) + 1) / (len(values) + 1))
    return PairedComparison(metric, rows, a, b, a - b, float(np.percentile(values, 2.5)),
                            float(np.percentile(values, 97.5)), p_value, len(values))


@dataclass(frozen=True)
class ComparedRows:
    """The test rows (positions) challenger and champion are compared on: those the champion
    never trained on. ``seen_in_training`` counts champion training rows among them (0 by
    construction; None when the champion's training rows are unknown)."""

    positions: np.ndarray
    seen_in_training: int | None
    excluded: int
    note: str


def rows_unseen_by(test_keys: np.ndarray | None, seen_keys: np.ndarray | None, rows: int, note: str = "") -> ComparedRows:
    """Leave out every test row whose identity key is among the champion's training rows."""
    everything = np.arange(rows)
    if test_keys is None or seen_keys is None:
        why = note or "the test rows carry no identity keys"
        return ComparedRows(everything, None, 0, f"unknown which test rows the champion trained on: {why}")
    seen = np.isin(test_keys, seen_keys)
    return ComparedRows(np.flatnonzero(~seen), 0, int(seen.sum()),
                        f"{int(seen.sum())} of {rows} test rows left out: the champion trained on them ({note})")


def paired_on_rows(
    metric: str, positions: np.ndarray, measure_a: Callable[[np.ndarray], float], measure_b: Callable[[np.ndarray], float],
    rounds: int, seed: int,
) -> PairedComparison:
    """``paired_bootstrap`` over the rows ``positions`` picks; ``measure_*(rows)`` compute the
    metric of each scorer on those row positions."""
    def measure(index: np.ndarray | None) -> tuple[float, float]:
        rows = positions if index is None else positions[index]
        return measure_a(rows), measure_b(rows)

    return paired_bootstrap(metric, len(positions), measure, rounds, seed)


def compare_with_champion(
    metric: str, compared: ComparedRows, min_rows: int, measure_a: Callable[[np.ndarray], float],
    measure_b: Callable[[np.ndarray], float], rounds: int, seed: int,
) -> tuple[PairedComparison | None, str | None]:
    """The paired comparison with the champion on the rows it never trained on, or why there is none."""
    if compared.seen_in_training is None:
        return None, f"{compared.note}; a review decides"
    if len(compared.positions) < min_rows:
        return None, (f"only {len(compared.positions)} test rows the champion never trained on "
                      f"(gate.min_compare_rows {min_rows}); a review decides")
    return paired_on_rows(metric, compared.positions, measure_a, measure_b, rounds, seed), None
