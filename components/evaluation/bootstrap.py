"""Percentile bootstrap intervals of evaluation metrics over resamples of the test rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def bootstrap_intervals(
    rows: int, measure: Callable[[np.ndarray], dict[str, float]], names: Sequence[str], rounds: int, seed: int
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of the ``names`` metrics over ``rounds`` resamples (with
    replacement) of the test rows; ``measure(index)`` computes the metrics on one resample."""
    if rows == 0 or rounds <= 0:
        return {}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        try:
            values = measure(rng.integers(0, rows, rows))
        except ValueError:  # e.g. a resample with one class only
            continue
        for name in names:
            value = values.get(name)
            if value is not None and np.isfinite(value):
                samples[name].append(float(value))
    return {
        name: (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))
        for name, values in samples.items() if len(values) >= rounds // 2
    }
