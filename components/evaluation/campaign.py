"""Campaign metrics (visit, post-click conversion, conversion over every row, uplift) and the
same-run peers: one gradient-boosting model per target, the CVR one fitted on visited rows only
(the sample-selection-biased approach ESMM replaces), uplift read from the boosted models with
the arm substituted (an S-learner)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from threadpoolctl import threadpool_limits

from components.evaluation.baselines import Baseline, fit_gradient_boosting
from components.evaluation.uplift import effect_in_top, treatment_effect, uplift_areas

# score name -> the metrics read from it
AUC_METRICS = {"pctr": ("visit_roc_auc", "visit_pr_auc"), "pctcvr": ("ctcvr_roc_auc", "ctcvr_pr_auc"),
               "pcvr": ("cvr_roc_auc", "cvr_pr_auc")}
UPLIFT_METRICS = {"uplift": ("auuc", "qini"), "visit_uplift": ("visit_auuc", "visit_qini")}
RANDOM_METRIC = "conversions_per_1000_random"


def top_metric(fraction: float) -> str:
    return f"conversions_per_1000_top_{round(fraction * 100)}pct"


def metric_names(fractions: Iterable[float]) -> frozenset[str]:
    names = {n for pair in (*AUC_METRICS.values(), *UPLIFT_METRICS.values()) for n in pair}
    return frozenset({*names, RANDOM_METRIC, *(top_metric(f) for f in fractions)})


@dataclass(frozen=True)
class Outcomes:
    """The test rows' outcomes and arms: visit, conversion (0/1) and whether the row was treated."""

    visit: np.ndarray
    conversion: np.ndarray
    treated: np.ndarray

    def take(self, rows: np.ndarray | None) -> Outcomes:
        return self if rows is None else Outcomes(self.visit[rows], self.conversion[rows], self.treated[rows])


def rank_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half), as sklearn's, without its input
    checks (the bootstrap calls it thousands of times). Raises ValueError with one class only."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("ROC AUC needs both classes")
    ranks = rankdata(scores)
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def compute_campaign_metrics(outcomes: Outcomes, scores: Mapping[str, np.ndarray], fractions: Iterable[float],
                             rows: np.ndarray | None = None, only: Iterable[str] | None = None) -> dict[str, float]:
    """Every campaign metric of ``scores`` (pctr, pcvr, pctcvr, uplift, visit_uplift per row) on
    ``rows`` (None: all); ``only`` computes just those names. Raises ValueError when a metric is
    undefined on these rows (one class only, or one arm only)."""
    o = outcomes.take(rows)
    s = {k: np.asarray(v, dtype="float64").reshape(-1)[rows] if rows is not None else np.asarray(v, dtype="float64").reshape(-1)
         for k, v in scores.items()}
    wanted = set(only) if only is not None else None
    out: dict[str, float] = {}

    def want(*names: str) -> bool:
        return wanted is None or bool(wanted & set(names))

    for score, (roc, pr) in AUC_METRICS.items():
        if not want(roc, pr):
            continue
        y, p = (o.visit, s[score]) if score == "pctr" else (o.conversion, s[score])
        if score == "pcvr":
            visited = o.visit.astype(bool)
            y, p = y[visited], p[visited]
        if want(roc):
            out[roc] = rank_auc(y, p)
        if want(pr):
            out[pr] = float(skm.average_precision_score(y, p))
    for score, (auuc, qini) in UPLIFT_METRICS.items():
        if want(auuc, qini):
            areas = uplift_areas(o.visit if score == "visit_uplift" else o.conversion, o.treated, s[score])
            out[auuc], out[qini] = areas["auuc"], areas["qini"]
    for fraction in fractions:
        if want(top_metric(fraction)):
            out[top_metric(fraction)] = 1000 * effect_in_top(o.conversion, o.treated, s["uplift"], fraction)
    if want(RANDOM_METRIC):
        out[RANDOM_METRIC] = 1000 * treatment_effect(o.conversion, o.treated)
    return out if wanted is None else {k: v for k, v in out.items() if k in wanted}


@dataclass(frozen=True)
class BoostedPeers:
    """Gradient boosting per target: visit and conversion on every row, CVR on visited rows only;
    uplift by scoring the same customer in every arm."""

    visit: Baseline
    conversion: Baseline
    visited_cvr: Baseline
    arm: str
    control_arm: str
    treatment_arms: tuple[str, ...]
    threads: int = 1
    name: str = "gradient_boosting_per_target"

    def score(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        with threadpool_limits(self.threads):
            return self._score(frame)

    def _score(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        def in_arm(model: Baseline, arm: str) -> np.ndarray:
            return model.score(frame.assign(**{self.arm: arm}))

        def effect(model: Baseline) -> np.ndarray:
            treated = np.mean([in_arm(model, a) for a in self.treatment_arms], axis=0)
            return treated - in_arm(model, self.control_arm)

        return {"pctr": self.visit.score(frame), "pctcvr": self.conversion.score(frame),
                "pcvr": self.visited_cvr.score(frame), "uplift": effect(self.conversion),
                "visit_uplift": effect(self.visit)}


def fit_boosted_peers(train: pd.DataFrame, features, max_iter: int, learning_rate: float, seed: int,
                      threads: int = 1) -> BoostedPeers:
    """The three boosted models on the training rows (features: a ``CampaignFeatures``), on
    ``threads`` OpenMP threads (on a shared 2-core machine more threads made a fit 50x slower)."""
    categorical = (*features.categorical, features.arm)

    def fit(rows: pd.DataFrame, label: str) -> Baseline:
        return fit_gradient_boosting(rows, label, features.numeric, categorical, max_iter, learning_rate, seed)

    visited = train[train[features.visit].astype(int).to_numpy() == 1]
    with threadpool_limits(threads):
        models = fit(train, features.visit), fit(train, features.conversion), fit(visited, features.conversion)
    return BoostedPeers(*models, features.arm, features.control_arm, tuple(features.treatment_arms), threads)
