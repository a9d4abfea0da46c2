"""Simple strong baselines, trained in the same run on the same split as the Keras model.

Each is the peer a data scientist would pick instead of a neural network: gradient-boosted trees
for tabular and click logs (LightGBM with native categoricals, or scikit-learn's
HistGradientBoosting), TF-IDF + logistic regression for text, EASE for implicit-feedback top-k.

They take the rows the Keras model takes, nulls included, with the same meaning: numeric nulls
are NaN, which the tree libraries handle natively (the logistic regressions impute the median and
add a missing flag); a null or blank text-coded category is ``MISSING_TOKEN`` (a category of its
own); integer- or boolean-coded categories keep NaN, the library's own missing category; a null
text is the empty text; EASE and most-popular ignore interactions without a user or item id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.models.scorer import as_categories, as_numbers, as_strings


def text_coded(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The categorical columns whose non-null values are not numbers or booleans (read as strings)."""
    numeric = {"integer", "floating", "mixed-integer-float", "decimal", "boolean", "empty"}
    return tuple(c for c in columns if pd.api.types.infer_dtype(frame[c], skipna=True) not in numeric)


def prepare_columns(frame: pd.DataFrame, columns: tuple[str, ...], strings: tuple[str, ...]) -> pd.DataFrame:
    """``columns`` of ``frame`` with nulls made explicit: ``strings`` as categories (a null is
    ``MISSING_TOKEN``), every other column as float64 (a null is NaN)."""
    return pd.DataFrame(
        {c: as_categories(frame[c]) if c in strings else as_numbers(frame[c], c) for c in columns},
        index=frame.index,
    )


@dataclass(frozen=True)
class Baseline:
    """A fitted scikit-learn estimator and the columns it reads.

    ``text`` (one column) is read as raw text, a null as the empty text; otherwise the columns go
    through ``prepare_columns`` with the ``strings`` read as categories."""

    name: str
    estimator: Any
    columns: tuple[str, ...]
    strings: tuple[str, ...] = ()
    text: bool = False

    def features(self, frame: pd.DataFrame):
        if self.text:
            return as_strings(frame[self.columns[0]])
        return prepare_columns(frame, self.columns, self.strings)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(self.features(frame))[:, 1]


def fit_gradient_boosting(
    train: pd.DataFrame, label: str, numeric: tuple[str, ...], categorical: tuple[str, ...],
    max_iter: int, learning_rate: float, seed: int,
) -> Baseline:
    """HistGradientBoosting with native categorical handling (unseen categories allowed) and
    native missing values."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    columns = (*numeric, *categorical)
    strings = text_coded(train, tuple(categorical))
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
    pipeline.fit(prepare_columns(train, columns, strings), train[label].astype(int))
    return Baseline("hist_gradient_boosting", pipeline, columns, strings)


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
    pipeline.fit(as_strings(train[text]), labels)
    return Baseline("tfidf_logistic_regression", pipeline, (text,), text=True)


def fit_logistic_regression(
    train: pd.DataFrame, label: str, numeric: tuple[str, ...], log_scaled: tuple[str, ...], c: float, seed: int
) -> Baseline:
    """Standardised (log1p where asked) numeric features, logistic regression; a null is the
    training median, with a missing flag for each column that had nulls in training."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    plain = [c for c in numeric if c not in log_scaled]
    parts = [
        ("log", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                              FunctionTransformer(np.log1p), StandardScaler()), list(log_scaled)),
        ("plain", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()), plain),
    ]
    if train[list(numeric)].isna().to_numpy().any():
        parts.append(("missing", MissingIndicator(error_on_new=False), list(numeric)))
    pipeline = make_pipeline(ColumnTransformer(parts), LogisticRegression(C=c, max_iter=5000, random_state=seed))
    columns = tuple(numeric)
    pipeline.fit(prepare_columns(train, columns, ()), train[label].astype(int))
    return Baseline("logistic_regression", pipeline, columns)


def fit_onehot_logistic(
    train: pd.DataFrame, label: str, categorical: tuple[str, ...], numeric: tuple[str, ...], c: float, seed: int
) -> Baseline:
    """Logistic regression on one-hot fields (unseen categories ignored) and log-scaled counts."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    parts = [("fields", OneHotEncoder(handle_unknown="ignore"), list(categorical))]
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
    pipeline.fit(prepare_columns(train, columns, tuple(categorical)), train[label].astype(int))
    return Baseline("onehot_logistic_regression", pipeline, columns, tuple(categorical))


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


def known_interactions(train: pd.DataFrame, user: str, item: str) -> pd.DataFrame:
    """The rows with both a user and an item id (a null id names no interaction); ids that
    pandas holds as float because of their nulls are whole numbers again."""
    if not train[[user, item]].isna().to_numpy().any():
        return train
    known = train.dropna(subset=[user, item])
    whole = {c: "int64" for c in (user, item)
             if pd.api.types.is_float_dtype(known[c]) and (known[c] == np.floor(known[c])).all()}
    return known.astype(whole)


def fit_most_popular(train: pd.DataFrame, user: str, item: str) -> MostPopular:
    train = known_interactions(train, user, item)
    counts = train.groupby(item).size()
    # ties broken by item id, so the baseline is deterministic
    ranked = counts.reset_index(name="n").sort_values(["n", item], ascending=[False, True])[item].to_numpy()
    seen = {u: set(group) for u, group in train.groupby(user)[item]}
    return MostPopular(ranked_items=ranked, seen=seen)


@dataclass(frozen=True, eq=False)
class BoostedTrees:
    """A fitted LightGBM booster and the columns it reads (``Baseline``'s ``score`` interface).

    Categorical columns are read as strings (a null or blank value is ``MISSING_TOKEN``, a
    category of its own when training had it) and mapped onto the training categories, so a
    category unseen in training scores as LightGBM's "missing" branch instead of failing;
    numeric columns are floats, missing values (NaN) handled natively.
    """

    booster: Any
    columns: tuple[str, ...]
    categories: dict[str, pd.Index]
    name: str = "lightgbm"

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        data = {}
        for column in self.columns:
            if column in self.categories:
                codes = self.categories[column].get_indexer(pd.Index(as_categories(frame[column]), dtype="string"))
                data[column] = pd.Categorical.from_codes(codes, categories=self.categories[column])
            else:
                data[column] = as_numbers(frame[column], column)
        return pd.DataFrame(data, index=frame.index)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(self.features(frame), num_iteration=self.booster.best_iteration))


def fit_lightgbm(
    train: pd.DataFrame, label: str, numeric: tuple[str, ...], categorical: tuple[str, ...], *,
    max_rounds: int, learning_rate: float, num_leaves: int, min_child_samples: int, l2: float,
    feature_fraction: float, cat_smooth: float, min_data_per_group: int,
    early_stopping_rounds: int, early_stopping_metric: str, validation_fraction: float,
    threads: int, seed: int,
) -> BoostedTrees:
    """LightGBM on numeric and native categorical columns (any cardinality: no one-hot, no
    255-category limit), early-stopped on ``early_stopping_metric`` (a LightGBM metric name:
    ``auc``, ``average_precision``, ``binary_logloss``) over a stratified ``validation_fraction``
    slice of ``train``, never the test split. Seeded and deterministic for a given thread count
    (one thread is also the fastest on a shared 2-core machine)."""
    import lightgbm
    from sklearn.model_selection import train_test_split

    columns = (*numeric, *categorical)
    categories = {c: pd.Index(sorted(set(as_categories(train[c]))), dtype="string") for c in categorical}
    model = BoostedTrees(booster=None, columns=columns, categories=categories)
    features = model.features(train)
    y = train[label].astype(int).to_numpy()
    fit_rows, stop_rows = train_test_split(
        np.arange(len(train)), test_size=validation_fraction, random_state=seed, stratify=y
    )
    params = {
        "objective": "binary", "metric": early_stopping_metric, "learning_rate": learning_rate,
        "num_leaves": num_leaves, "min_child_samples": min_child_samples, "lambda_l2": l2,
        "feature_fraction": feature_fraction, "cat_smooth": cat_smooth, "min_data_per_group": min_data_per_group,
        "num_threads": threads, "seed": seed, "deterministic": True, "force_col_wise": True, "verbosity": -1,
    }
    fit_set = lightgbm.Dataset(features.iloc[fit_rows], y[fit_rows], categorical_feature=list(categorical))
    stop_set = lightgbm.Dataset(features.iloc[stop_rows], y[stop_rows], reference=fit_set)
    booster = lightgbm.train(
        params, fit_set, num_boost_round=max_rounds, valid_sets=[stop_set],
        callbacks=[lightgbm.early_stopping(early_stopping_rounds, verbose=False)],
    )
    return BoostedTrees(booster=booster, columns=columns, categories=categories)


@dataclass(frozen=True, eq=False)
class EASE:
    """EASE (Steck, WWW 2019): a closed-form item-item model; ``MostPopular``'s interface.

    A user's scores are their interaction row times ``weights`` (items x items, zero diagonal);
    items the user interacted with in training are never recommended, and users without a
    training history get the most popular items.
    """

    items: np.ndarray
    user_rows: dict
    history: Any  # scipy.sparse CSR, users x items, 1 where the user interacted
    weights: np.ndarray
    popular: MostPopular
    name: str = "ease"
    # users scored per block: the block's dense scores are block x items float32
    block_users: int = 1024

    def recommend(self, users: Sequence, k: int) -> np.ndarray:
        users = list(users)
        dtype = self.items.dtype if np.issubdtype(self.items.dtype, np.integer) else object
        result = np.full((len(users), k), -1, dtype=dtype)
        rows = np.array([self.user_rows.get(u, -1) for u in users], dtype=np.int64)
        known = np.flatnonzero(rows >= 0)
        if len(known):
            known = known[np.asarray(self.history[rows[known]].sum(axis=1)).ravel() > 0]
        for position in np.setdiff1d(np.arange(len(users)), known):
            result[position] = self.popular.recommend([users[position]], k)[0]
        width = min(k, len(self.items))
        for start in range(0, len(known), self.block_users):
            block = known[start:start + self.block_users]
            seen = self.history[rows[block]]
            scores = np.asarray(seen @ self.weights, dtype=np.float32)
            scores[seen.nonzero()] = -np.inf
            if width < len(self.items):
                top = np.argpartition(-scores, width - 1, axis=1)[:, :width]
            else:
                top = np.tile(np.arange(len(self.items)), (len(block), 1))
            top_scores = np.take_along_axis(scores, top, axis=1)
            order = np.lexsort((top, -top_scores), axis=1)  # best first; ties: the more popular item
            top = np.take_along_axis(top, order, axis=1)
            picks = self.items[top].astype(dtype)
            picks[np.take_along_axis(top_scores, order, axis=1) == -np.inf] = -1
            result[block, :width] = picks
        return result


def fit_ease(train: pd.DataFrame, user: str, item: str, l2: float, max_items: int = 20_000) -> EASE:
    """EASE: B = I - P / diag(P) with P = (XᵀX + l2·I)⁻¹ on the binary user x item matrix X of
    ``train`` (every interaction a positive, repeats counted once; rows without a user or an
    item id are ignored).

    Memory scales with the square of the catalogue: one items x items float32 matrix
    (11 MB for MovieLens' 1,682 items, 381 MB for 10,000, 1.6 GB for 20,000), built block by
    block from the sparse X and inverted in place (Cholesky, LAPACK potrf/potri), so the peak is
    about 1.4x that matrix plus the sparse X (measured at 10,000 items). Time is cubic in items:
    on 2 shared cores about 1 s for 1,682, 14 s for 10,000, so about 2 minutes for 20,000.
    Only the ``max_items`` most popular items enter the model; rarer ones are never recommended.
    """
    from scipy import sparse
    from scipy.linalg import lapack

    train = known_interactions(train, user, item)
    popular = fit_most_popular(train, user, item)
    items = np.asarray(popular.ranked_items[:max_items])
    pairs = train[[user, item]].drop_duplicates()
    pairs = pairs[pairs[item].isin(items)]
    user_index = pd.Index(np.sort(train[user].unique()))
    item_index = pd.Index(items)
    history = sparse.csr_matrix(
        (np.ones(len(pairs), dtype=np.float32),
         (user_index.get_indexer(pairs[user]), item_index.get_indexer(pairs[item]))),
        shape=(len(user_index), len(items)),
    )
    n = len(items)
    gram = np.empty((n, n), dtype=np.float32)
    columns, transposed = history.tocsc(), history.T.tocsr()
    for start in range(0, n, 2048):
        gram[:, start:start + 2048] = (transposed @ columns[:, start:start + 2048]).toarray()
    gram[np.diag_indices(n)] += np.float32(l2)
    # the Gram matrix is symmetric: its transpose is the Fortran-ordered view LAPACK overwrites
    factor, info = lapack.spotrf(gram.T, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: X'X + l2*I is not positive definite (potrf info {info}); raise l2")
    inverse, info = lapack.spotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: inverting X'X + l2*I failed (potri info {info})")
    # P, C-ordered (``gram`` itself when LAPACK worked in place); potri filled its upper triangle
    # in Fortran order, the lower one here: mirror it block by block (no second n x n array)
    weights = inverse.T
    del gram, factor, inverse
    for start in range(0, n, 2048):
        stop = min(start + 2048, n)
        weights[start:stop, stop:] = weights[stop:, start:stop].T
        block = weights[start:stop, start:stop]
        upper = np.triu_indices(stop - start, 1)
        block[upper] = block.T[upper]
    weights /= -np.diag(weights).copy()[np.newaxis, :]  # B_ij = -P_ij / P_jj
    weights[np.diag_indices(n)] = 0.0
    return EASE(items=items, user_rows={u: i for i, u in enumerate(user_index)}, history=history,
                weights=weights, popular=popular)
