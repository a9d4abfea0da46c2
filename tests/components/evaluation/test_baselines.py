"""The same-run peers: LightGBM (fraud, ctr) and EASE (recommend), on small real slices."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from components.config import load_params
from components.data.readers import read_sentences
from components.data.splits import holdout_per_user
from components.evaluation.baselines import (
    BoostedTrees,
    fit_ease,
    fit_lightgbm,
    fit_logistic_regression,
    fit_most_popular,
    fit_onehot_logistic,
)
from components.evaluation.ranking import ranking_metrics
from components.models.scorer import MISSING_TOKEN
from components.use_cases import get_use_case
from tests.components.models.test_nulls import with_nulls
from tests.conftest import (
    SENTIMENT_DIR,
    frappe_slice,
    fraud_slice,
    intent_slice,
    movielens_slice,
    needs_mirror,
)

ROOT = Path(__file__).resolve().parents[3]
USER, ITEM = "user_id", "item_id"


def configured(name: str):
    """A use case and its config from the repository's params.yaml (the real baseline settings)."""
    use_case = get_use_case(name)
    return use_case, use_case.configure(load_params(ROOT / "params.yaml"))


def halves(frame: pd.DataFrame, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = train_test_split(frame, test_size=0.25, random_state=0, stratify=frame[label])
    return train.reset_index(drop=True), test.reset_index(drop=True)


# --- LightGBM: fraud and ctr ------------------------------------------------------------------

@needs_mirror
def test_lightgbm_beats_onehot_logistic_regression_on_frappe_and_scores_unseen_categories():
    use_case, config = configured("ctr")
    train, test = halves(frappe_slice(30000), config.label)
    peer = use_case.fit_baseline(train, config)
    assert isinstance(peer, BoostedTrees)
    assert peer.name == "lightgbm"
    assert len(peer.categories["item"]) > 255  # beyond HistGradientBoosting's category limit
    old = fit_onehot_logistic(train, config.label, config.features.categorical, (), 1.0, config.seed)
    y = test[config.label].to_numpy()
    new_auc, old_auc = roc_auc_score(y, peer.score(test)), roc_auc_score(y, old.score(test))
    assert new_auc > old_auc + 0.005, (new_auc, old_auc)

    unseen = test.head(50).copy()
    unseen["user"] = "a-user-never-seen"
    unseen.loc[unseen.index[::2], "item"] = "99999999"
    unseen.loc[unseen.index[::5], "city"] = None
    scores = peer.score(unseen)
    assert scores.shape == (50,)
    assert np.all(np.isfinite(scores))
    assert np.all((scores >= 0) & (scores <= 1))


@needs_mirror
def test_lightgbm_reads_numeric_counts_with_missing_values_next_to_categoricals():
    use_case, config = configured("ctr")
    frame = frappe_slice(3000)
    frame["I1"] = frame["item"].astype(int) % 7
    frame.loc[frame.index[::10], "I1"] = np.nan
    features = config.features.model_copy(update={"numeric": ("I1",), "categorical": ("user", "item", "daytime")})
    config = replace(config, features=features)
    train, test = halves(frame, config.label)
    peer = use_case.fit_baseline(train, config)
    assert peer.columns == ("I1", "user", "item", "daytime")
    assert np.all(np.isfinite(peer.score(test)))


def test_lightgbm_fraud_peer_is_strong_and_deterministic_for_a_seed():
    use_case, config = configured("fraud")
    train, test = halves(fraud_slice(), config.label)
    first, second = use_case.fit_baseline(train, config), use_case.fit_baseline(train, config)
    np.testing.assert_array_equal(first.score(test), second.score(test))
    y = test[config.label].to_numpy()
    auc = roc_auc_score(y, first.score(test))
    logistic = fit_logistic_regression(train, config.label, config.features.numeric,
                                       config.features.log_scaled, 1.0, config.seed)
    assert auc > 0.95
    assert auc > roc_auc_score(y, logistic.score(test)) - 0.01  # at least on par with the old peer
    other_seed = replace(config, seed=config.seed + 1)
    assert not np.array_equal(use_case.fit_baseline(train, other_seed).score(test), first.score(test))


# --- EASE: recommend ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def movielens_halves() -> tuple[pd.DataFrame, pd.DataFrame]:
    return holdout_per_user(movielens_slice(150), USER, 0.25, seed=42)


@needs_mirror
def test_ease_matches_the_closed_form_on_a_dense_matrix(movielens_halves):
    train, _ = movielens_halves
    ease = fit_ease(train, USER, ITEM, l2=200.0)
    x = pd.crosstab(train[USER], train[ITEM]).clip(upper=1)
    x = x[list(ease.items)].to_numpy(dtype="float64")
    p = np.linalg.inv(x.T @ x + 200.0 * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)[np.newaxis, :]
    np.testing.assert_allclose(ease.weights, b, atol=1e-6)
    assert np.all(np.diag(ease.weights) == 0)


@needs_mirror
def test_ease_beats_most_popular_masks_seen_items_and_serves_unknown_users(movielens_halves):
    use_case, config = configured("recommend")
    train, test = movielens_halves
    k = config.evaluate.top_k
    users = np.sort(test[USER].unique())
    truth = test.groupby(USER)[ITEM].apply(set)
    relevant = [truth[u] for u in users]
    catalogue = pd.concat([train[ITEM], test[ITEM]]).nunique()

    ease = use_case.fit_baseline(train, config)
    assert ease.name == "ease"
    lists = ease.recommend(users, k)
    assert lists.shape == (len(users), k)
    assert np.issubdtype(lists.dtype, np.integer)
    popular = fit_most_popular(train, USER, ITEM)
    ndcg = ranking_metrics(lists, relevant, k, catalogue)[f"ndcg_at_{k}"]
    popular_ndcg = ranking_metrics(popular.recommend(users, k), relevant, k, catalogue)[f"ndcg_at_{k}"]
    assert ndcg > popular_ndcg + 0.1, (ndcg, popular_ndcg)

    seen = train.groupby(USER)[ITEM].apply(set)
    assert all(not (set(row) & seen[u]) for u, row in zip(users, lists, strict=True))
    assert all(len(set(row)) == k for row in lists)  # no repeats, no padding for these users
    np.testing.assert_array_equal(ease.recommend(users, k), lists)  # deterministic
    assert ease.recommend([-7], k).tolist() == [list(popular.ranked_items[:k])]


@needs_mirror
def test_ease_pads_with_minus_one_when_fewer_than_k_unseen_items(movielens_halves):
    train, _ = movielens_halves
    few = train[train[ITEM] <= 12]
    ease = fit_ease(few, USER, ITEM, l2=10.0)
    user = few.groupby(USER).size().idxmax()
    unseen = set(ease.items) - set(few.loc[few[USER] == user, ITEM])
    row = ease.recommend([user], 20)[0]
    assert set(row[: len(unseen)]) == unseen
    assert (row[len(unseen):] == -1).all()


@needs_mirror
def test_ease_keeps_only_the_most_popular_items_when_capped(movielens_halves):
    train, _ = movielens_halves
    ease = fit_ease(train, USER, ITEM, l2=200.0, max_items=100)
    top = fit_most_popular(train, USER, ITEM).ranked_items[:100]
    assert ease.weights.shape == (100, 100)
    assert ease.weights.dtype == np.float32
    assert list(ease.items) == list(top)
    assert set(ease.recommend(train[USER].unique()[:20], 10).ravel()) <= set(top) | {-1}


# --- missing values: the peers take the nulls the model takes -----------------------------------

def assert_probabilities(scores: np.ndarray, rows: int) -> None:
    assert scores.shape == (rows,)
    assert np.all(np.isfinite(scores))
    assert np.all((scores >= 0) & (scores <= 1))


def test_gradient_boosting_and_logistic_peers_fit_and_score_nulls_in_every_column():
    use_case, config = configured("intent")
    features = config.features
    columns = [*features.numeric, *features.categorical]
    train, test = halves(with_nulls(intent_slice(1500), columns), config.label)
    assert train[columns].isna().any().all()
    peer = use_case.fit_baseline(train, config)
    assert peer.strings == ("Month", "VisitorType")  # integer- and boolean-coded categories keep NaN
    scores = peer.score(test)
    assert_probabilities(scores, len(test))
    assert roc_auc_score(test[config.label], scores) > 0.8  # a trivial scorer gets 0.5
    row = test.head(1)
    none, blank = peer.score(pd.concat([row.assign(Month=None), row.assign(Month=" ")]))
    assert none == blank  # both are MISSING_TOKEN
    for other in (fit_logistic_regression(train, config.label, features.numeric, features.log_scaled, 1.0, config.seed),
                  fit_onehot_logistic(train, config.label, features.categorical, features.numeric, 1.0, config.seed)):
        assert_probabilities(other.score(test), len(test))


def test_lightgbm_peer_gives_null_categories_a_category_of_their_own_and_reads_nan_counts():
    numeric, categorical = ("ProductRelated_Duration", "PageValues", "ExitRates"), ("Month", "VisitorType", "Browser")
    train, test = halves(with_nulls(intent_slice(1500), [*numeric, *categorical]), "Revenue")
    peer = fit_lightgbm(
        train, "Revenue", numeric, categorical, max_rounds=200, learning_rate=0.05, num_leaves=15,
        min_child_samples=20, l2=0.0, feature_fraction=1.0, cat_smooth=10.0, min_data_per_group=20,
        early_stopping_rounds=20, early_stopping_metric="binary_logloss", validation_fraction=0.2, threads=1, seed=0,
    )
    assert all(MISSING_TOKEN in peer.categories[c] for c in categorical)
    assert_probabilities(peer.score(test), len(test))
    row = test.head(1)
    none, blank = peer.score(pd.concat([row.assign(Month=None), row.assign(Month="")]))
    assert none == blank


def test_tfidf_peer_reads_a_null_text_as_an_empty_text():
    use_case, config = configured("sentiment")
    frame = read_sentences(SENTIMENT_DIR, config.params.data).sample(n=1000, random_state=7)
    train, test = halves(with_nulls(frame, [config.features.text]), config.label)
    assert train[config.features.text].isna().any()
    peer = use_case.fit_baseline(train, config)
    assert_probabilities(peer.score(test), len(test))
    none, nan, empty = peer.score(pd.DataFrame({config.features.text: [None, np.nan, ""]}))
    assert none == nan == empty  # not the n-grams of "None" or "nan"


def test_ease_ignores_interactions_without_ids_and_serves_a_null_user_the_popular_items():
    rng = np.random.default_rng(0)
    clean = pd.DataFrame({USER: rng.integers(1, 60, 900), ITEM: rng.integers(1, 80, 900)}).drop_duplicates()
    gaps = clean.astype("float64")
    gaps.loc[gaps.index[:5], USER] = np.nan
    gaps.loc[gaps.index[5:10], ITEM] = np.nan
    known = clean.iloc[10:]
    ease, reference = fit_ease(gaps, USER, ITEM, l2=10.0), fit_ease(known, USER, ITEM, l2=10.0)
    assert np.issubdtype(ease.items.dtype, np.integer)
    np.testing.assert_array_equal(ease.items, reference.items)
    np.testing.assert_allclose(ease.weights, reference.weights, atol=1e-6)
    users = np.sort(known[USER].unique())
    np.testing.assert_array_equal(ease.recommend(users, 5), reference.recommend(users, 5))
    popular = fit_most_popular(gaps, USER, ITEM).ranked_items[:5]
    assert ease.recommend([None], 5).tolist() == [list(popular)]
