"""The use-case registry: one frozen record per use case; its numbers live in params.yaml.

The name is the same word everywhere: registry key, params.yaml key, data folder, dvc.yaml stage
key, MLflow experiment and registered model name.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from components.config import CommonParams, GateParams, Params, Section, UseCaseParams, parse_section
from components.errors import ConfigError, UnknownUseCaseError
from components.evaluation.baselines import (
    EASE,
    Baseline,
    BoostedTrees,
    fit_ease,
    fit_gradient_boosting,
    fit_lightgbm,
    fit_tfidf_logistic,
)
from components.models.ctr import CtrFeatures, CtrTrain, build_ctr_model
from components.models.recommender import RecommendFeatures, RecommendTrain, build_recommender
from components.models.tabular import TabularFeatures, TabularTrain, build_tabular_classifier
from components.models.text import TextFeatures, TextTrain, build_text_classifier
from components.models.text_intents import (
    IntentTextTrain,
    build_intent_classifier,
    with_class_names,
)
from components.tasks import BINARY, MULTICLASS, RANKING, Task


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
    features_type: type[Section]
    train_type: type[Section]
    # builder(train_frame, features, train_params, seed, *, label, **task_extras) -> keras.Model
    build_model: Callable[..., Any]
    fit_baseline: Callable[[pd.DataFrame, UseCaseConfig], Any]
    data_licence: str
    data_citation: str
    published: Mapping[str, float] = field(default_factory=dict)
    published_source: str = ""
    # the kind of task (components/tasks): split, labels, metrics, plots, drift score, business terms
    task: Task = BINARY
    class_weight: Callable[[pd.DataFrame, UseCaseConfig], dict[int, float]] | None = None
    make_serving: Callable[[Any, tuple[str, ...]], Any] | None = None
    # for model cards and release reviews
    intended_use: str = ""
    limitations: str = ""
    business_terms: Mapping[str, str] = field(default_factory=dict)

    def configure(self, params: Params) -> UseCaseConfig:
        """Type this use case's section of params.yaml: unknown keys fail fast, and every metric
        the gate names must be one the task computes."""
        if self.name not in params.use_cases:
            raise ConfigError(f"params.yaml has no section use_cases.{self.name}; add one (see README)")
        section = params.use_cases[self.name]
        where = f"params.use_cases.{self.name}"
        config = UseCaseConfig(
            name=self.name,
            seed=params.common.seed,
            bootstrap_rounds=params.common.bootstrap_rounds,
            distribute=params.common.distribute_strategy,
            params=section,
            features=parse_section(self.features_type, section.features, f"{where}.features"),
            train=parse_section(self.train_type, section.train, f"{where}.train"),
            evaluate=parse_section(self.task.evaluate_type, section.evaluate, f"{where}.evaluate"),
        )
        check_gate_metrics(where, section.gate, self.task.metric_names(config.evaluate),
                           self.task.slice_metric_names(config.evaluate))
        return config


def check_gate_metrics(where: str, gate: GateParams, metrics: frozenset[str], slice_metrics: frozenset[str]) -> None:
    """A misspelt metric in the gate would silently disable its check: refuse it, listing the names."""
    problems = []
    named = {f"{where}.gate.primary_metric": [gate.primary_metric], f"{where}.gate.floors": list(gate.floors)}
    for key, names in named.items():
        problems += [f"{key}: {n!r} is not a metric of this task" for n in names if n not in metrics]
    problems += [f"{where}.gate.slice_floors: {n!r} is not a per-slice metric of this task"
                 for n in gate.slice_floors if n not in slice_metrics]
    if problems:
        raise ConfigError(
            "\n".join(problems) + f"\nmetrics: {sorted(metrics)}\nper-slice metrics: {sorted(slice_metrics)}"
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


def _lightgbm_baseline(train: pd.DataFrame, config: UseCaseConfig) -> BoostedTrees:
    """fraud and ctr: LightGBM on the numeric and (native, any-cardinality) categorical fields."""
    e = config.evaluate
    return fit_lightgbm(
        train, config.label, config.features.numeric, config.features.categorical,
        max_rounds=e.baseline_max_iter, learning_rate=e.baseline_learning_rate,
        num_leaves=e.baseline_num_leaves, min_child_samples=e.baseline_min_child_samples, l2=e.baseline_l2,
        feature_fraction=e.baseline_feature_fraction, cat_smooth=e.baseline_cat_smooth,
        min_data_per_group=e.baseline_min_data_per_group, early_stopping_rounds=e.baseline_early_stopping_rounds,
        early_stopping_metric=e.baseline_early_stopping_metric, validation_fraction=e.baseline_validation_fraction,
        threads=e.baseline_threads, seed=config.seed,
    )


def _ease_baseline(train: pd.DataFrame, config: UseCaseConfig) -> EASE:
    return fit_ease(train, config.features.user, config.features.item,
                    config.evaluate.baseline_l2, config.evaluate.baseline_max_items)


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
        task=MULTICLASS,
        features_type=TextFeatures,
        train_type=IntentTextTrain,
        build_model=build_intent_classifier,
        make_serving=with_class_names,
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
        build_model=build_tabular_classifier,
        class_weight=_balanced_class_weight,
        fit_baseline=_lightgbm_baseline,
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
        build_model=build_ctr_model,
        fit_baseline=_lightgbm_baseline,
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
        task=RANKING,
        features_type=RecommendFeatures,
        train_type=RecommendTrain,
        build_model=build_recommender,
        fit_baseline=_ease_baseline,
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


def params_json_schema() -> dict[str, Any]:
    """The JSON Schema of params.yaml, with each registered use case's ``features``, ``train`` and
    ``evaluate`` typed by its builder and task (``funnel params schema``; for editor completion)."""
    from pydantic import create_model

    sections: dict[str, Any] = {}
    with warnings.catch_warnings():  # the ``validate`` key, see components.config.UseCaseParams
        warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)
        for name, use_case in REGISTRY.items():
            sections[name] = (create_model(
                f"use_case_{name}", __base__=UseCaseParams, __doc__=use_case.title,
                features=(use_case.features_type, ...), train=(use_case.train_type, ...),
                evaluate=(use_case.task.evaluate_type, ...),
            ), ...)
    use_cases = create_model("use_cases", __base__=Section, **sections)
    root = create_model("params", __base__=Section, __doc__="funnel's params.yaml",
                        common=(CommonParams, ...), use_cases=(use_cases, ...))
    return root.model_json_schema()
