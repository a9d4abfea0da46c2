"""The use-case registry: one frozen record per use case; its numbers live in params.yaml.

The name is the same word everywhere: registry key, params.yaml key, data folder, dvc.yaml stage
key, MLflow experiment and registered model name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from components.evaluation.baselines import (
    Baseline,
    fit_gradient_boosting,
    fit_logistic_regression,
    fit_onehot_logistic,
    fit_tfidf_logistic,
)
from components.config import Params, UseCaseParams, parse_section
from components.errors import UnknownUseCaseError
from components.data.splits import Splits, official_split, per_user_split, stratified_split
from components.models.ctr import CtrFeatures, CtrTrain, build_ctr_model
from components.models.recommender import RecommendFeatures, RecommendTrain, build_recommender
from components.models.tabular import TabularFeatures, TabularTrain, build_tabular_classifier
from components.models.text import TextFeatures, TextTrain, build_text_classifier
from components.models.text_intents import (
    IntentTextTrain,
    build_intent_classifier,
    with_class_names,
)


@dataclass(frozen=True)
class TabularEvaluate:
    test_fraction: float
    lift_fractions: tuple[float, ...]
    baseline_max_iter: int = 300
    baseline_learning_rate: float = 0.05
    baseline_c: float = 1.0
    natural_positive_rate: float | None = None
    precision_target: float | None = None
    slice_buckets: dict[str, tuple[float, ...]] | None = None


@dataclass(frozen=True)
class TextEvaluate:
    test_fraction: float
    lift_fractions: tuple[float, ...]
    baseline_c: float


@dataclass(frozen=True)
class IntentTextEvaluate:
    baseline_c: float
    length_buckets: tuple[int, ...]


@dataclass(frozen=True)
class RankingEvaluate:
    test_fraction: float
    top_k: int
    # users are sliced by their number of training interactions at these edges
    activity_buckets: tuple[int, ...]


@dataclass(frozen=True)
class UseCaseConfig:
    """A use case's params.yaml section with ``features``/``train``/``evaluate`` typed."""

    name: str
    seed: int
    params: UseCaseParams
    features: Any
    train: Any
    evaluate: Any
    bootstrap_rounds: int = 200
    distribute: str = "default"

    @property
    def label(self) -> str:
        return self.params.validate.label


@dataclass(frozen=True)
class UseCase:
    """What makes a use case: its typed params, model builder, baseline and reference results."""

    name: str
    title: str
    features_type: type
    train_type: type
    evaluate_type: type
    build_model: Callable[[pd.DataFrame, Any, Any, int], Any]
    fit_baseline: Callable[[pd.DataFrame, UseCaseConfig], Baseline]
    data_licence: str
    data_citation: str
    published: Mapping[str, float] = field(default_factory=dict)
    published_source: str = ""
    task: str = "binary"  # binary | multiclass | ranking
    split: Callable[[pd.DataFrame, UseCaseConfig], Splits] = stratified_split
    class_weight: Callable[[pd.DataFrame, UseCaseConfig], dict[int, float]] | None = None
    make_serving: Callable[[Any, tuple[str, ...]], Any] | None = None
    # for model cards and release reviews
    intended_use: str = ""
    limitations: str = ""
    business_terms: Mapping[str, str] = field(default_factory=dict)

    def configure(self, params: Params) -> UseCaseConfig:
        """Type this use case's section of params.yaml (unknown keys fail fast)."""
        section = params.use_cases[self.name]
        where = f"params.use_cases.{self.name}"
        return UseCaseConfig(
            name=self.name,
            seed=params.common.seed,
            bootstrap_rounds=params.common.bootstrap_rounds,
            distribute=params.common.distribute_strategy,
            params=section,
            features=parse_section(self.features_type, section.features, f"{where}.features"),
            train=parse_section(self.train_type, section.train, f"{where}.train"),
            evaluate=parse_section(self.evaluate_type, section.evaluate, f"{where}.evaluate"),
        )


def _intent_baseline(train: pd.DataFrame, config: UseCaseConfig) -> Baseline:
    return fit_gradient_boosting(
        train, config.label, config.features.numeric, config.features.categorical,
        config.evaluate.baseline_max_iter, config.evaluate.baseline_learning_rate, config.seed,
    )


def _sentiment_baseline(train: pd.DataFrame, config: UseCaseConfig) -> Baseline:
    return fit_tfidf_logistic(
        train, config.label, config.features.text, config.evaluate.baseline_c, config.seed
    )


def _fraud_baseline(train: pd.DataFrame, config: UseCaseConfig) -> Baseline:
    return fit_logistic_regression(
        train, config.label, config.features.numeric, config.features.log_scaled,
        config.evaluate.baseline_c, config.seed,
    )


def _ctr_baseline(train: pd.DataFrame, config: UseCaseConfig) -> Baseline:
    return fit_onehot_logistic(
        train, config.label, config.features.categorical, config.features.numeric,
        config.evaluate.baseline_c, config.seed,
    )


def _most_popular(train: pd.DataFrame, config: UseCaseConfig):
    from components.evaluation.ranking import fit_most_popular

    return fit_most_popular(train, config.features.user, config.features.item)


def _balanced_class_weight(train: pd.DataFrame, config: UseCaseConfig) -> dict[int, float]:
    """Weight each class by ``rows / (2 * class rows)`` so both classes count equally."""
    counts = train[config.label].astype(int).value_counts()
    return {int(k): float(len(train) / (2 * v)) for k, v in counts.items()}


REGISTRY: dict[str, UseCase] = {
    "intent": UseCase(
        name="intent",
        intended_use=("Rank live shop sessions by their chance of ending in a purchase, so that offers, chat invitations or retargeting budgets go to the sessions most likely to convert. Input: one session's behaviour counters (pages, durations, bounce/exit rates, page value, month, visitor type, ...). Not for decisions about individual people's credit, prices or access."),
        limitations=("Trained on one year (2016 era) of one retailer's sessions; seasonality (Nov, May) dominates and new months or marketing channels shift the scores. PageValues is known only once a session reached a valued page. Small slices (visitor type Other, February) have too few sessions to judge."),
        business_terms={'rows': 'sessions', 'positives': 'purchases'},
        title="Purchase intent from session behaviour (UCI Online Shoppers)",
        features_type=TabularFeatures,
        train_type=TabularTrain,
        evaluate_type=TabularEvaluate,
        build_model=build_tabular_classifier,
        fit_baseline=_intent_baseline,
        data_licence="CC BY 4.0",
        data_citation="Sakar et al., Neural Computing & Applications 31 (2019); UCI ML Repository #468",
        published={"roc_auc": 0.937, "pr_auc": 0.754},
        published_source="XGBoost + feature selection + oversampling, Heliyon 9(4) 2023",
    ),
    "sentiment": UseCase(
        name="sentiment",
        intended_use=('Flag positive vs negative product and service reviews (short English sentences) for dashboards and for routing unhappy customers to service.'),
        limitations=('3,000 short sentences from Amazon, Yelp and IMDb: sarcasm, negation over long spans and other languages are not covered; imdb sentences are the hardest slice.'),
        business_terms={'rows': 'reviews', 'positives': 'positive reviews'},
        title="Review sentiment (UCI Sentiment Labelled Sentences: amazon, yelp, imdb)",
        features_type=TextFeatures,
        train_type=TextTrain,
        evaluate_type=TextEvaluate,
        build_model=build_text_classifier,
        fit_baseline=_sentiment_baseline,
        data_licence="CC BY 4.0",
        data_citation="Kotzias, Denil, de Freitas, Smyth, KDD 2015; UCI ML Repository #331",
        published={},
        published_source="no published per-sentence supervised result (see data README)",
    ),
    "support": UseCase(
        name="support",
        intended_use=("Route a customer's free-text banking support message to one of 77 intents (the team or answer that handles it), with a probability to fall back to a human below a chosen confidence."),
        limitations=('Banking77 is English, single-intent, short and clean; real messages mix intents, typos and languages. Several intents are near-duplicates (e.g. pending vs failed transfers), where most errors sit.'),
        business_terms={'rows': 'support messages', 'positives': 'intent'},
        title="Customer-service intent routing (Banking77, 77 intents)",
        task="multiclass",
        features_type=TextFeatures,
        train_type=IntentTextTrain,
        evaluate_type=IntentTextEvaluate,
        build_model=build_intent_classifier,
        make_serving=with_class_names,
        split=official_split,
        fit_baseline=_sentiment_baseline,
        data_licence="CC BY 4.0",
        data_citation="Casanueva et al., NLP4ConvAI @ ACL 2020, arXiv:2003.04807",
        published={"accuracy": 0.934},
        published_source="full-data results commonly quoted at 93.4-93.7% accuracy (not verified)",
    ),
    "fraud": UseCase(
        name="fraud",
        intended_use=("Score card transactions for fraud review; the stored threshold targets 90% precision at the natural fraud rate (0.172%), so flagged transactions are worth an analyst's time."),
        limitations=('Trained on an under-sampled subset (7,363 rows, 473 frauds) of two days of European card transactions from 2013 with PCA-anonymised features; metrics are re-weighted to the natural rate, but the few frauds make every number noisy. Not a credit decision.'),
        business_terms={'rows': 'transactions', 'positives': 'frauds'},
        title="Transaction fraud detection (ULB credit-card samples)",
        features_type=TabularFeatures,
        train_type=TabularTrain,
        evaluate_type=TabularEvaluate,
        build_model=build_tabular_classifier,
        class_weight=_balanced_class_weight,
        fit_baseline=_fraud_baseline,
        data_licence="DbCL v1.0",
        data_citation="Dal Pozzolo, Caelen, Johnson, Bontempi, IEEE CIDM 2015",
        published={},
        published_source="no anchor applies to these subsamples (see data README)",
    ),
    "ctr": UseCase(
        name="ctr",
        intended_use=('Predict whether an impression (an app/item shown to a user in a context: time, weekday, weather, place) is clicked/used, to rank and price placements. Also trains on a Criteo-style ad log by configuration.'),
        limitations=('frappe is small (86,582 rows from validation+test only, re-split 7:2:1) with 2 sampled negatives per positive, so probabilities are calibrated to a 33% positive rate, not a real click rate. Unseen users or items fall back to an out-of-vocabulary embedding.'),
        business_terms={'rows': 'impressions', 'positives': 'clicks'},
        title="Ad click-through prediction (frappe app-usage logs, 10 one-hot fields)",
        features_type=CtrFeatures,
        train_type=CtrTrain,
        evaluate_type=TabularEvaluate,
        build_model=build_ctr_model,
        fit_baseline=_ctr_baseline,
        data_licence="frappe terms: research use only, no redistribution (never committed)",
        data_citation="Baltrunas et al., arXiv:1505.03014 (2015); libFM encoding: He & Chua, SIGIR 2017",
        published={"roc_auc": 0.9845},
        published_source=(
            "DCN-V2 on BARS frappe_x1 (full 7:2:1 split with 3x our training rows; DeepFM 0.9842, "
            "LR 0.9356). funnel pools the shipped validation+test files and re-splits them 7:2:1"
        ),
    ),
    "recommend": UseCase(
        name="recommend",
        intended_use=('Recommend the top-10 items a customer has not interacted with yet (implicit feedback), for home-page and e-mail slots; unknown customers get the most popular items.'),
        limitations=('MovieLens 100K: 943 users and 1,682 movies from 1997-98; every rating counts as a positive interaction, so it learns "what will they watch", not "what will they like". New items cannot be recommended until retrained; training histories are stored inside the model.'),
        business_terms={'rows': 'items', 'positives': 'interact with'},
        title="Product recommendation, top-10 unseen items per user (MovieLens 100K, implicit)",
        task="ranking",
        features_type=RecommendFeatures,
        train_type=RecommendTrain,
        evaluate_type=RankingEvaluate,
        build_model=build_recommender,
        fit_baseline=_most_popular,
        split=per_user_split,
        data_licence="MovieLens terms: no redistribution without permission (never committed)",
        data_citation="Harper & Konstan, ACM TiiS 5(4) 19 (2015), doi:10.1145/2827872",
        published={"map_at_10": 0.146, "ndcg_at_10": 0.475, "precision_at_10": 0.412, "recall_at_10": 0.219},
        published_source="BiVAE on Microsoft Recommenders' MovieLens 100K benchmark (BPR: 0.132 / 0.442 / 0.388 / 0.213)",
    ),
}


def get_use_case(name: str) -> UseCase:
    """The registered use case called ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownUseCaseError(name, list(REGISTRY)) from None


def list_use_cases() -> list[str]:
    return list(REGISTRY)
