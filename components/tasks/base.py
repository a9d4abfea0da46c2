"""The Task protocol: what every kind of task (binary, multiclass, ranking, ...) provides.

A task kind owns how a use case's rows are split, how labels are encoded for training, which
metrics and plots it computes, how its same-run baseline and the champion are compared, what
drift score it offers and how its results read in business terms. The generic flow only ever
calls these methods, so a new kind of task is one new module under ``components/tasks``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from components.config import Section
from components.data.splits import Splits, split_use_case
from components.evaluation.report import ChampionScorer, Evaluation
from components.training.fit import TrainedModel

# A use case (components.use_cases.UseCase: its builder and baseline) and its typed
# configuration (UseCaseConfig) are passed in; tasks sit below the use-case registry, so they
# are typed loosely here rather than imported.
UseCase = Any
UseCaseConfig = Any


class Task(Protocol):
    """One kind of task; implementations are stateless singletons registered in ``TASKS``."""

    # Read-only properties, so an implementation's plain class attributes (``name = "binary"``,
    # ``evaluate_type = BinaryEvaluate``, a subclass of Section) satisfy the protocol.
    @property
    def name(self) -> str:
        """The kind's name in params.yaml (``task:``) and the ``TASKS`` registry."""
        ...

    @property
    def needs_label(self) -> bool:
        """Whether a use case of this kind learns a label column (``validate.label`` required)."""
        ...

    @property
    def evaluate_type(self) -> type[Section]:
        """The typed ``evaluate`` section of params.yaml this task reads."""
        ...

    def metric_names(self, evaluate: Any) -> frozenset[str]:
        """Every metric ``evaluate`` computes for this task (gate floors and the primary metric
        must name one of these)."""
        ...

    def slice_metric_names(self, evaluate: Any) -> frozenset[str]:
        """The metrics computed per slice (``gate.slice_floors`` must name one of these)."""
        ...

    def split(self, frame: pd.DataFrame, config: UseCaseConfig) -> Splits:
        """Train / validation / test for this task, by the use case's ``split`` section (stable: rows keep their side)."""
        ...

    def train(self, use_case: UseCase, config: UseCaseConfig, frame: pd.DataFrame) -> TrainedModel:
        """Split, encode the labels, build the use case's model and fit it."""
        ...

    def evaluate(
        self, use_case: UseCase, config: UseCaseConfig, trained: TrainedModel, plots_dir: Path,
        champion: ChampionScorer | None = None,
    ) -> Evaluation:
        """Model vs same-run baseline vs champion on the test split: metrics, slices, plots, intervals."""
        ...

    def drift_score(self, scorer: Any) -> Callable[[pd.DataFrame], np.ndarray | None] | None:
        """A one-number-per-row score of the champion whose distribution shift counts as drift,
        or None when the task has none."""
        ...

    def business_sentences(self, evaluation: Evaluation, terms: Mapping[str, str]) -> list[str]:
        """The evaluation in the shop's words (``terms``: what rows and positives are called)."""
        ...


class ConfiguredSplit:
    """The split every task kind uses today: the use case's ``split`` section (stable by row key)."""

    def split(self, frame: pd.DataFrame, config: UseCaseConfig) -> Splits:
        return split_use_case(frame, config)
