"""The use-case registry: one frozen record per use case; its numbers live in params.yaml.

The name is the same word everywhere: registry key, params.yaml key, data folder, dvc.yaml stage
key, MLflow experiment and registered model name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from components.baselines import Baseline, fit_gradient_boosting, fit_tfidf_logistic
from components.config import Params, UseCaseParams, parse_section
from components.errors import UnknownUseCaseError
from components.models.tabular import TabularFeatures, TabularTrain, build_tabular_classifier
from components.models.text import TextFeatures, TextTrain, build_text_classifier


@dataclass(frozen=True)
class TabularEvaluate:
    test_fraction: float
    lift_fractions: tuple[float, ...]
    baseline_max_iter: int
    baseline_learning_rate: float


@dataclass(frozen=True)
class TextEvaluate:
    test_fraction: float
    lift_fractions: tuple[float, ...]
    baseline_c: float


@dataclass(frozen=True)
class UseCaseConfig:
    """A use case's params.yaml section with ``features``/``train``/``evaluate`` typed."""

    name: str
    seed: int
    params: UseCaseParams
    features: Any
    train: Any
    evaluate: Any

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

    def configure(self, params: Params) -> UseCaseConfig:
        """Type this use case's section of params.yaml (unknown keys fail fast)."""
        section = params.use_cases[self.name]
        where = f"params.use_cases.{self.name}"
        return UseCaseConfig(
            name=self.name,
            seed=params.common.seed,
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


REGISTRY: dict[str, UseCase] = {
    "intent": UseCase(
        name="intent",
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
}


def get_use_case(name: str) -> UseCase:
    """The registered use case called ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownUseCaseError(name, list(REGISTRY)) from None


def list_use_cases() -> list[str]:
    return list(REGISTRY)
