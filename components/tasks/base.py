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


class StreamingTask(Protocol):
    """A task kind that can also train and evaluate from a snapshot read as a stream of batches
    (``train.streaming``); its ``evaluate`` reads the stream again when ``trained.stream`` is set."""

    def train_stream(self, use_case: UseCase, config: UseCaseConfig, stream: Any) -> TrainedModel:
        """``train`` from a ``data.stream.SnapshotStream``: no step holds all rows."""
        ...


def train_from_snapshot(use_case: UseCase, config: UseCaseConfig, frame: pd.DataFrame, path: Path) -> TrainedModel:
    """The use case's training on its snapshot: the frame in memory, or (``train.streaming.enabled``)
    the file at ``path`` read as a stream of row batches.

    Raises:
        ConfigError: streaming is on for a task kind that cannot stream.
    """
    streaming = getattr(config.train, "streaming", None)
    if streaming is None or not streaming.enabled:
        return use_case.task.train(use_case, config, frame)
    task = use_case.task
    if not callable(getattr(task, "train_stream", None)):
        from components.errors import ConfigError

        raise ConfigError(f"use_cases.{config.name}: train.streaming is on, but a {task.name} task cannot train from a "
                          "stream; turn train.streaming off (only binary tasks with the ctr builder stream today)")
    from components.data.stream import stream_use_case

    return task.train_stream(use_case, config, stream_use_case(path, config, streaming.batch_rows))


class ConfiguredSplit:
    """The split every task kind uses today: the use case's ``split`` section (stable by row key)."""

    def split(self, frame: pd.DataFrame, config: UseCaseConfig) -> Splits:
        return split_use_case(frame, config)
