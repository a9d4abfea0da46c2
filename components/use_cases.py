"""Use cases are params.yaml sections; Python holds only what they name: task kinds
(components/tasks), model builders (``BUILDERS``) and same-run baselines (``BASELINES``).

A use case's name is the same word everywhere: params.yaml key, data folder, dvc.yaml stage key,
MLflow experiment and registered model name. ``get_use_case(name, params)`` joins its section
with the code it names.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from components.config import (
    CardParams,
    CommonParams,
    GateParams,
    Params,
    Section,
    UseCaseParams,
    load_params,
    load_settings,
    parse_section,
    read_params_file,
)
from components.data.transforms import parse_transforms
from components.errors import ConfigError, FunnelError, UnknownUseCaseError
from components.evaluation.baselines import (
    EASE,
    Baseline,
    BoostedTrees,
    fit_ease,
    fit_gradient_boosting,
    fit_lightgbm,
    fit_tfidf_logistic,
)
from components.evaluation.campaign import BoostedPeers, fit_boosted_peers
from components.evaluation.clustering import TfidfKMeans, fit_tfidf_kmeans
from components.evaluation.policy import LoggedPolicy, fit_logged_policy
from components.evaluation.retrieval import TfidfRetrieval, fit_tfidf_retrieval
from components.evaluation.session_peers import SessionPeers, fit_session_peers
from components.models import (
    answers,
    campaign,
    coldstart,
    ctr,
    recommender,
    sessions,
    slots,
    tabular,
    text,
    text_intents,
    topics,
)
from components.models.answers import AnswerFeatures, AnswersTrain, build_answer_model
from components.models.campaign import CampaignFeatures, CampaignTrain, build_campaign_model
from components.models.coldstart import ColdStartFeatures, ColdStartTrain, build_coldstart
from components.models.ctr import CtrFeatures, CtrTrain, build_ctr_model, build_ctr_model_from_batches
from components.models.recommender import RecommendFeatures, RecommendTrain, build_recommender
from components.models.sessions import SessionFeatures, SessionsTrain, build_session_model
from components.models.slots import SlotFeatures, SlotsTrain, build_slot_models
from components.models.tabular import TabularFeatures, TabularTrain, build_tabular_classifier
from components.models.text import TextFeatures, TextTrain, build_text_classifier
from components.models.text_intents import (
    IntentTextTrain,
    build_intent_classifier,
    with_class_names,
)
from components.models.topics import TopicFeatures, TopicsTrain, build_topic_model
from components.overrides import effective_params
from components.tasks import TASKS, Task, get_task
from components.training.head import fit_softmax_classifier


@dataclass(frozen=True)
class Builder:
    """A registered model builder: its typed ``features`` / ``train`` sections and build function."""

    features_type: type[Section]
    train_type: type[Section]
    build: Callable[..., Any]
    # the feature columns that must hold no nulls (a null there fails validation, naming the column)
    non_null_columns: Callable[[Any], list[str]] | None = None
    make_serving: Callable[[Any, tuple[str, ...]], Any] | None = None
    # how a built model is fitted when not by ``training.fit.fit_with_params`` (same arguments)
    fit: Callable[..., Any] | None = None
    # build from training rows that arrive in batches (``train.streaming``), when the builder can:
    # build_stream(batches, features, train_params, seed, *, label, median_sample_rows) -> keras.Model
    build_stream: Callable[..., Any] | None = None


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
    # the typed data.transforms of params.yaml (see components/data/transforms.py)
    transforms: tuple[Any, ...] = ()

    @property
    def label(self) -> str | None:
        return self.params.validate.label


@dataclass(frozen=True)
class UseCase:
    """A params.yaml section joined with the code it names: its task kind, model builder (typed
    ``features``/``train`` sections, build function) and same-run baseline, and its card (title,
    licence, intended use, ... as params.yaml states them)."""

    name: str
    task: Task
    builder: Builder
    fit_baseline: Callable[[pd.DataFrame, UseCaseConfig], Any]
    card: CardParams
    class_weight: Callable[[pd.DataFrame, UseCaseConfig], dict[int, float]] | None = None

    def configure(self, params: Params) -> UseCaseConfig:
        """Type this use case's section of params.yaml: unknown keys fail fast, and every metric
        the gate names must be one the task computes."""
        if self.name not in params.use_cases:
            raise ConfigError(f"params.yaml has no section use_cases.{self.name}; add one (see README)")
        section = params.use_cases[self.name]
        where = f"params.use_cases.{self.name}"
        if self.task.needs_label and not section.validate.label:
            raise ConfigError(f"{where}.validate.label: missing; a {self.task.name} use case learns a label column, name it")
        features = parse_section(self.builder.features_type, section.features, f"{where}.features")
        section = section.model_copy(update={"validate": no_nulls_where_required(
            section, self.builder.non_null_columns(features) if self.builder.non_null_columns else [])})
        config = UseCaseConfig(
            name=self.name,
            seed=params.common.seed,
            bootstrap_rounds=params.common.bootstrap_rounds,
            distribute=params.common.distribute_strategy,
            params=section,
            features=features,
            transforms=parse_transforms(section.data.transforms, f"{where}.data.transforms"),
            train=parse_section(self.builder.train_type, section.train, f"{where}.train"),
            evaluate=parse_section(self.task.evaluate_type, section.evaluate, f"{where}.evaluate"),
        )
        check_gate_metrics(where, section.gate, self.task.metric_names(config.evaluate),
                           self.task.slice_metric_names(config.evaluate))
        return config


def no_nulls_where_required(section: UseCaseParams, columns: list[str]):
    """The ``validate`` section with nulls refused where the model cannot take them (the label,
    and the builder's ``non_null_columns``): a null there fails validation, naming the column."""
    rules = dict(section.validate.columns)
    for column in dict.fromkeys(c for c in (section.validate.label, *columns) if c):
        rule = rules.get(column)
        allowed = None if rule is None else (
            section.validate.max_null_fraction if rule.max_null_fraction is None else rule.max_null_fraction)
        if rule is not None and allowed:  # the column's own rate, else the section-wide one
            rules[column] = rule.model_copy(update={"max_null_fraction": 0.0})
    return section.validate.model_copy(update={"columns": rules})


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


def _label(config: UseCaseConfig) -> str:
    if config.label is None:
        raise ConfigError(f"params.use_cases.{config.name}.validate.label: this baseline learns a label; name it")
    return config.label


def _gradient_boosting_baseline(train: pd.DataFrame, config: UseCaseConfig) -> Baseline:
    return fit_gradient_boosting(
        train, _label(config), config.features.numeric, config.features.categorical,
        config.evaluate.baseline_max_iter, config.evaluate.baseline_learning_rate, config.seed,
    )


def _tfidf_baseline(train: pd.DataFrame, config: UseCaseConfig) -> Baseline:
    return fit_tfidf_logistic(
        train, _label(config), config.features.text, config.evaluate.baseline_c, config.seed
    )


def _lightgbm_baseline(train: pd.DataFrame, config: UseCaseConfig) -> BoostedTrees:
    """fraud and ctr: LightGBM on the numeric and (native, any-cardinality) categorical fields."""
    e = config.evaluate
    return fit_lightgbm(
        train, _label(config), config.features.numeric, config.features.categorical,
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


def _tfidf_retrieval_baseline(train: pd.DataFrame, config: UseCaseConfig) -> TfidfRetrieval:
    return fit_tfidf_retrieval(train, config.features.text, config.features.answer_id, config.evaluate.baseline_max_ngram)


def _tfidf_kmeans_baseline(train: pd.DataFrame, config: UseCaseConfig) -> TfidfKMeans:
    return fit_tfidf_kmeans(config.evaluate.baseline_max_ngram, config.evaluate.baseline_min_df,
                            config.train.kmeans_restarts, config.seed)


def _logged_policy_baseline(train: pd.DataFrame, config: UseCaseConfig) -> LoggedPolicy:
    return fit_logged_policy(config.features.train_policy)


def _boosted_peers_baseline(train: pd.DataFrame, config: UseCaseConfig) -> BoostedPeers:
    """campaign: gradient boosting per target (CVR on visited rows only), uplift by arm substitution."""
    return fit_boosted_peers(train, config.features, config.evaluate.baseline_max_iter,
                             config.evaluate.baseline_learning_rate, config.seed, config.evaluate.baseline_threads)


def _session_peers_baseline(train: pd.DataFrame, config: UseCaseConfig) -> SessionPeers:
    return fit_session_peers(sessions.session_sequences(train, config.features), config.evaluate.baseline_rule_steps,
                             config.evaluate.baseline_knn_neighbours)


def _balanced_class_weight(train: pd.DataFrame, config: UseCaseConfig) -> dict[int, float]:
    """Weight each class by ``rows / (classes * class rows)`` so every class counts equally."""
    counts = train[config.label].astype(int).value_counts()
    return {int(k): float(len(train) / (len(counts) * v)) for k, v in counts.items()}


# builder(train_frame, features, train_params, seed, *, label, **task_extras) -> keras.Model
BUILDERS: dict[str, Builder] = {
    "tabular": Builder(TabularFeatures, TabularTrain, build_tabular_classifier,
                       tabular.non_null_columns),
    "text": Builder(TextFeatures, TextTrain, build_text_classifier, text.non_null_columns),
    "text_intents": Builder(TextFeatures, IntentTextTrain, build_intent_classifier,
                            text_intents.non_null_columns, make_serving=with_class_names,
                            fit=fit_softmax_classifier),
    "ctr": Builder(CtrFeatures, CtrTrain, build_ctr_model, ctr.non_null_columns,
                   build_stream=build_ctr_model_from_batches),
    "recommender": Builder(RecommendFeatures, RecommendTrain, build_recommender,
                           recommender.non_null_columns),
    "answers": Builder(AnswerFeatures, AnswersTrain, build_answer_model, answers.non_null_columns),
    "topics": Builder(TopicFeatures, TopicsTrain, build_topic_model, topics.non_null_columns),
    "slots": Builder(SlotFeatures, SlotsTrain, build_slot_models, slots.non_null_columns),
    "campaign": Builder(CampaignFeatures, CampaignTrain, build_campaign_model, campaign.non_null_columns),
    "sessions": Builder(SessionFeatures, SessionsTrain, build_session_model, sessions.non_null_columns),
    "hybrid_recommender": Builder(ColdStartFeatures, ColdStartTrain, build_coldstart, coldstart.non_null_columns),
}

# baseline(train_frame, config) -> an object with ``name`` and ``score(rows)``
BASELINES: dict[str, Callable[[pd.DataFrame, UseCaseConfig], Any]] = {
    "gradient_boosting": _gradient_boosting_baseline,
    "lightgbm": _lightgbm_baseline,
    "tfidf_logistic": _tfidf_baseline,
    "ease": _ease_baseline,
    "tfidf_retrieval": _tfidf_retrieval_baseline,
    "tfidf_kmeans": _tfidf_kmeans_baseline,
    "logged_policy": _logged_policy_baseline,
    "boosted_per_target": _boosted_peers_baseline,
    "session_peers": _session_peers_baseline,
}


def _registered(kind: str, name: str, known: Mapping[str, Any], where: str) -> Any:
    if name not in known:
        raise ConfigError(f"{where}: unknown {kind} {name!r}; registered {kind}s are {sorted(known)}")
    return known[name]


def use_case_from_section(name: str, section: UseCaseParams) -> UseCase:
    """Join a params.yaml section with the task kind, builder and baseline it names."""
    where = f"params.use_cases.{name}"
    if section.task not in TASKS:
        raise ConfigError(f"{where}.task: unknown task kind {section.task!r}; known kinds are {sorted(TASKS)}")
    builder: Builder = _registered("builder", section.model.builder, BUILDERS, f"{where}.model.builder")
    baseline = _registered("baseline", section.model.baseline, BASELINES, f"{where}.model.baseline")
    return UseCase(
        name=name, task=get_task(section.task), builder=builder, fit_baseline=baseline, card=section.card,
        class_weight=_balanced_class_weight if section.model.class_weight == "balanced" else None,
    )




def _params(params: Params | None) -> Params:
    return params if params is not None else load_params(load_settings().params_path)


def get_use_case(name: str, params: Params | None = None) -> UseCase:
    """The use case called ``name`` in params.yaml (``params``; default: the repository's file)."""
    params = _params(params)
    if name not in params.use_cases:
        raise UnknownUseCaseError(name, list(params.use_cases))
    return use_case_from_section(name, params.use_cases[name])


def list_use_cases(params: Params | None = None) -> list[str]:
    """Every use case section of params.yaml, in file order."""
    return list(_params(params).use_cases)


@dataclass(frozen=True)
class SectionStatus:
    """One ``use_cases`` section of params.yaml: its use case, or why it is invalid."""

    name: str
    use_case: UseCase | None
    section: UseCaseParams | None
    error: str | None


def survey_use_cases(path: Any, overrides: Mapping[str, Any] | None = None) -> list[SectionStatus]:
    """Every section of params.yaml checked on its own (``funnel list``): a broken section is
    reported with its problems instead of hiding the others."""
    raw = effective_params(read_params_file(path), overrides)
    base = {"common": raw.get("common", {}), "defaults": raw.get("defaults", {}), "use_cases": {}}
    statuses = []
    for name, section in (raw.get("use_cases") or {}).items():
        try:
            params = parse_section(Params, {**base, "use_cases": {name: section}}, "params")
            use_case = use_case_from_section(name, params.use_cases[name])
            use_case.configure(params)
            statuses.append(SectionStatus(name, use_case, params.use_cases[name], None))
        except FunnelError as exc:
            statuses.append(SectionStatus(name, None, None, str(exc)))
    return statuses


def params_json_schema() -> dict[str, Any]:
    """The JSON Schema of params.yaml, with each registered use case's ``features``, ``train`` and
    ``evaluate`` typed by its builder and task (``funnel params schema``; for editor completion)."""
    from pydantic import create_model

    sections: dict[str, Any] = {}
    with warnings.catch_warnings():  # the ``validate`` key, see components.config.UseCaseParams
        warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)
        params = _params(None)
        for name in params.use_cases:
            use_case = get_use_case(name, params)
            sections[name] = (create_model(
                f"use_case_{name}", __base__=UseCaseParams, __doc__=use_case.card.title,
                features=(use_case.builder.features_type, ...), train=(use_case.builder.train_type, ...),
                evaluate=(use_case.task.evaluate_type, ...),
            ), ...)
    use_cases = create_model("use_cases", __base__=Section, **sections)
    root = create_model("params", __base__=Section, __doc__="funnel's params.yaml",
                        common=(CommonParams, ...), use_cases=(use_cases, ...),
                        defaults=(dict[str, dict[str, dict[str, Any]]], {}))
    schema = root.model_json_schema()
    # a section may leave out what the defaults of its task kind and builder give, so no key of a
    # section is required; unknown keys are still refused (additionalProperties: false)
    for definition in schema.get("$defs", {}).values():
        definition.pop("required", None)
    return schema
