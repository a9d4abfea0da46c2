"""Answer retrieval: P@1, MRR, Recall@k, the abstention threshold for a target precision, the
TF-IDF baseline over the same answer base, slices and plots.

Each query has one right answer (its FAQ thread, or its intent). Metrics are computed from
per-query arrays, so bootstrap resamples and slices are means over rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.evaluation.plots import save_figure


def answer_ranks(ranked: np.ndarray, truth: Sequence[str] | np.ndarray) -> np.ndarray:
    """The 1-based rank of each query's right answer in its ranked list; 0 when it is not listed."""
    ranked = np.asarray(ranked).astype(str)
    truth = np.asarray(truth).astype(str).reshape(-1, 1)
    if ranked.ndim != 2 or len(ranked) != len(truth):
        raise ValueError(f"expected one ranked list per query: {ranked.shape} lists for {len(truth)} queries")
    hits = ranked == truth
    return np.where(hits.any(axis=1), np.argmax(hits, axis=1) + 1, 0)


def per_query_metrics(ranks: np.ndarray, answered: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per query: right first (``p_at_1``), reciprocal rank within the top ``k`` (``mrr``), right
    within the top ``k`` (``recall_at_<k>``) and ``answered`` (not handed to a person)."""
    ranks = np.asarray(ranks)
    found = (ranks >= 1) & (ranks <= k)
    return {
        "p_at_1": (ranks == 1).astype("float64"),
        "mrr": np.where(found, 1.0 / np.maximum(ranks, 1), 0.0),
        f"recall_at_{k}": found.astype("float64"),
        "answered": np.asarray(answered, dtype=bool).reshape(-1).astype("float64"),
    }


def summarize_retrieval(per_query: dict[str, np.ndarray], index: np.ndarray | None = None) -> dict[str, float]:
    """Means over queries (over the rows ``index`` picks, repeats counted, when given), the share
    handed to a person (``abstention_rate``) and P@1 of the answered queries (``answered_precision``)."""
    values = per_query if index is None else {name: column[index] for name, column in per_query.items()}
    rows = len(values["p_at_1"])
    if rows == 0:
        return {name: float("nan") for name in (*values, "abstention_rate", "answered_precision")}
    result = {name: float(column.mean()) for name, column in values.items() if name != "answered"}
    answered = values["answered"] > 0
    result["abstention_rate"] = float(1.0 - answered.mean())
    result["answered_precision"] = float(values["p_at_1"][answered].mean()) if answered.any() else float("nan")
    return result


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, target_precision: float) -> float:
    """The lowest confidence threshold at which the answered queries (confidence >= threshold)
    reach ``target_precision`` P@1, so the fewest queries are handed to a person. All queries
    answered: their lowest confidence; no threshold reaches it: above the highest (all abstain)."""
    confidence, correct = np.asarray(confidence, dtype="float64"), np.asarray(correct, dtype="float64")
    if len(confidence) == 0:
        return float("-inf")
    order = np.argsort(-confidence, kind="stable")
    values, right = confidence[order], np.cumsum(correct[order])
    # the last position of each distinct confidence: a threshold answers every tied query
    last = np.flatnonzero(np.r_[values[1:] != values[:-1], True])
    precision = right[last] / (last + 1)
    reached = np.flatnonzero(precision >= target_precision)
    if not len(reached):
        return float(np.nextafter(values[0], np.inf))
    return float(values[last[reached[-1]]])


def length_labels(edges: Sequence[int]) -> list[str]:
    """``up to 6 words``, ``7-12 words``, ``over 12 words`` for edges (6, 12)."""
    inner = [f"{a + 1}-{b} words" for a, b in zip(edges, edges[1:], strict=False)]
    return [f"up to {edges[0]} words", *inner, f"over {edges[-1]} words"]


def length_bucket(texts: pd.Series, edges: Sequence[int]) -> np.ndarray:
    """Each query's word-count bucket (``length_labels``)."""
    words = texts.astype(str).str.split().str.len().to_numpy()
    return np.asarray(length_labels(edges), dtype=object)[np.searchsorted(np.asarray(edges), words, side="left")]


def retrieval_slices(buckets: np.ndarray, per_query: dict[str, np.ndarray], others: dict[str, dict[str, np.ndarray]],
                     order: Sequence[str] = ()) -> list[dict]:
    """P@1 and MRR per query-length bucket (in ``order``, then any other), with ``others``' P@1
    beside them (e.g. the baseline's)."""
    present = set(buckets.astype(str))
    rows = []
    for bucket in [*(b for b in order if b in present), *sorted(present - set(order))]:
        index = np.flatnonzero(buckets.astype(str) == bucket)
        mine = summarize_retrieval(per_query, index)
        row = {"slice": "length", "value": bucket, "rows": len(index), "p_at_1": mine["p_at_1"], "mrr": mine["mrr"]}
        row |= {f"{name}_p_at_1": float(values["p_at_1"][index].mean()) for name, values in others.items()}
        rows.append(row)
    return rows


@dataclass(frozen=True)
class TfidfRetrieval:
    """The same-run baseline: TF-IDF (word 1-2 grams, sublinear tf) cosine between a query and the
    answer base's entries; an answer scores its best entry."""

    name: str
    vectorizer: object
    entries: object  # the entries' sparse unit TF-IDF rows
    entry_answer: np.ndarray
    answer_ids: np.ndarray

    def rank(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores), each (queries, k), best first."""
        cosines = (self.vectorizer.transform(list(texts)) @ self.entries.T).toarray()  # type: ignore[attr-defined]
        best = np.full((len(cosines), len(self.answer_ids)), -1.0)
        for position in range(len(self.answer_ids)):
            columns = self.entry_answer == position
            best[:, position] = cosines[:, columns].max(axis=1)
        k = min(k, len(self.answer_ids))
        top = np.argsort(-best, axis=1, kind="stable")[:, :k]
        return self.answer_ids[top], np.take_along_axis(best, top, axis=1)


def fit_tfidf_retrieval(index: pd.DataFrame, text: str, answer_id: str, max_ngram: int = 2) -> TfidfRetrieval:
    """TF-IDF retrieval over the answer base ``index`` (its entries' ``text`` and ``answer_id``)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = index[text].fillna("").astype(str).tolist()
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, max_ngram)).fit(texts)
    ids = index[answer_id].astype(str).to_numpy()
    answer_ids = np.unique(ids)
    return TfidfRetrieval(name=f"tfidf_retrieval (word 1-{max_ngram} grams)", vectorizer=vectorizer,
                          entries=vectorizer.transform(texts), entry_answer=np.searchsorted(answer_ids, ids),
                          answer_ids=answer_ids)


def confidence_of(scores: np.ndarray, rule: str) -> np.ndarray:
    """A ranked list's confidence: its top score, or (``margin``) the top score's lead over the second."""
    scores = np.asarray(scores, dtype="float64")
    if rule == "margin" and scores.shape[1] > 1:
        return scores[:, 0] - scores[:, 1]
    return scores[:, 0]


def champion_answers(scored, rows: int) -> np.ndarray:
    """The ``answers`` column an answers pyfunc returns, as a (rows, k) array of ids."""
    if not isinstance(scored, pd.DataFrame) or "answers" not in scored:
        raise ValueError("the champion does not return an 'answers' column of ranked answer ids")
    answers = np.stack([np.asarray(v).astype(str) for v in scored["answers"]]) if len(scored) else np.zeros((0, 1), str)
    if answers.shape[0] != rows:
        raise ValueError(f"the champion returned {answers.shape[0]} ranked lists for {rows} queries")
    return answers


def write_retrieval_plots(ranks: dict[str, np.ndarray], confidence: np.ndarray, correct: np.ndarray,
                          threshold: float, k: int, folder: Path) -> list[Path]:
    """Recall@1..k per ranker, and the model's answered precision and hand-off rate by threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    cutoffs = np.arange(1, k + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in ranks.items():
        ax.plot(cutoffs, [np.mean((values >= 1) & (values <= c)) for c in cutoffs], "o-", label=name)
    ax.set(xlabel="answers shown (k)", ylabel="right answer among them", title="Recall@k")
    ax.legend(loc="best")
    paths = [save_figure(fig, folder / "recall_at_k.png")]

    fig, ax = plt.subplots(figsize=(6, 4))
    grid = np.unique(confidence)
    answered = [(confidence >= t) for t in grid]
    ax.plot(grid, [correct[a].mean() if a.any() else np.nan for a in answered], label="P@1 of answered")
    ax.plot(grid, [1 - a.mean() for a in answered], label="handed to a person")
    if np.isfinite(threshold):
        ax.axvline(threshold, color="grey", linestyle="--", label="chosen threshold")
    ax.set(xlabel="confidence threshold", ylabel="share of queries", title="Abstention trade-off (test)")
    ax.legend(loc="best")
    paths.append(save_figure(fig, folder / "abstention.png"))
    return paths
