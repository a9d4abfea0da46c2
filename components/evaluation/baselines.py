"""Simple strong baselines, trained in the same run on the same split as the Keras model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Baseline:
    """A fitted scikit-learn estimator and the columns it reads."""

    name: str
    estimator: Any
    columns: tuple[str, ...]

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        data = frame[list(self.columns)]
        if len(self.columns) == 1:
            data = data[self.columns[0]].astype(str)
        return self.estimator.predict_proba(data)[:, 1]


def fit_gradient_boosting(
    train: pd.DataFrame, label: str, numeric: tuple[str, ...], categorical: tuple[str, ...],
    max_iter: int, learning_rate: float, seed: int,
) -> Baseline:
    """HistGradientBoosting with native categorical handling (unseen categories allowed)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    columns = (*numeric, *categorical)
    encoder = ColumnTransformer(
        [("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan),
          list(categorical))],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    model = HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=learning_rate, early_stopping=True,
        categorical_features=list(range(len(categorical))), random_state=seed,
    )
    pipeline = make_pipeline(encoder, model)
    pipeline.fit(train[list(columns)], train[label].astype(int))
    return Baseline("hist_gradient_boosting", pipeline, columns)


def fit_tfidf_logistic(train: pd.DataFrame, label: str, text: str, c: float, seed: int) -> Baseline:
    """TF-IDF word 1-2 grams + character 2-5 grams, logistic regression (binary or multinomial)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )
    pipeline = make_pipeline(features, LogisticRegression(C=c, max_iter=2000, random_state=seed))
    numeric = pd.api.types.is_numeric_dtype(train[label]) or pd.api.types.is_bool_dtype(train[label])
    labels = train[label].astype(int) if numeric else train[label].astype(str)
    pipeline.fit(train[text].astype(str), labels)
    return Baseline("tfidf_logistic_regression", pipeline, (text,))


def fit_logistic_regression(
    train: pd.DataFrame, label: str, numeric: tuple[str, ...], log_scaled: tuple[str, ...], c: float, seed: int
) -> Baseline:
    """Standardised (log1p where asked) numeric features, logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    plain = [c for c in numeric if c not in log_scaled]
    scaled = ColumnTransformer([
        ("log", make_pipeline(FunctionTransformer(np.log1p), StandardScaler()), list(log_scaled)),
        ("plain", StandardScaler(), plain),
    ])
    pipeline = make_pipeline(scaled, LogisticRegression(C=c, max_iter=5000, random_state=seed))
    pipeline.fit(train[list(numeric)], train[label].astype(int))
    return Baseline("logistic_regression", pipeline, tuple(numeric))


def fit_onehot_logistic(
    train: pd.DataFrame, label: str, categorical: tuple[str, ...], numeric: tuple[str, ...], c: float, seed: int
) -> Baseline:
    """Logistic regression on one-hot fields (unseen categories ignored) and log-scaled counts."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    parts = [("fields", make_pipeline(
        FunctionTransformer(lambda frame: frame.astype(str)),
        OneHotEncoder(handle_unknown="ignore"),
    ), list(categorical))]
    if numeric:
        parts.append(("counts", make_pipeline(
            SimpleImputer(strategy="constant", fill_value=0.0, add_indicator=True),
            FunctionTransformer(lambda x: np.log1p(np.maximum(x, 0.0))),
            StandardScaler(),
        ), list(numeric)))
    pipeline = make_pipeline(
        ColumnTransformer(parts), LogisticRegression(C=c, max_iter=2000, random_state=seed)
    )
    columns = (*categorical, *numeric)
    pipeline.fit(train[list(columns)], train[label].astype(int))
    return Baseline("onehot_logistic_regression", pipeline, columns)


@dataclass(frozen=True)
class MostPopular:
    """The most-popular baseline: the training set's most interacted items, seen items removed."""

    ranked_items: np.ndarray
    seen: dict
    name: str = "most_popular"

    def recommend(self, users: Sequence, k: int) -> np.ndarray:
        rows = []
        for user in users:
            seen = self.seen.get(user, ())
            picks = [item for item in self.ranked_items[: k + len(seen)] if item not in seen][:k]
            rows.append(picks + [-1] * (k - len(picks)))
        return np.asarray(rows)


def fit_most_popular(train: pd.DataFrame, user: str, item: str) -> MostPopular:
    counts = train.groupby(item).size()
    # ties broken by item id, so the baseline is deterministic
    ranked = counts.reset_index(name="n").sort_values(["n", item], ascending=[False, True])[item].to_numpy()
    seen = {u: set(group) for u, group in train.groupby(user)[item]}
    return MostPopular(ranked_items=ranked, seen=seen)
