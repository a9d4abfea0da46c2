"""Hyperparameter search over the ranges a use case's ``tune:`` section declares (Optuna: TPE,
seeded; median pruning on the validation metric after each epoch).

The study lives in a journal file, so trials asked here can be trained in other processes (Dask
workers on this machine): a worker opens its trial by id, reports each epoch's validation value
to it and stops early when the pruner says so; the caller tells the study the outcome.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from components.config import Section, parse_section
from components.errors import ConfigError
from components.training.fit import FitResult, fit_callbacks

logger = logging.getLogger(__name__)

# only what the model is built and fitted from is searched: never the data, split, test or gate
SEARCHABLE = ("train", "features")
STUDY_NAME = "funnel-tune"


class SearchRange(Section):
    """One searched value: ``low``..``high`` (ints when both are ints; ``log`` spaces them by
    ratio; ``step`` quantises), or one of ``choices``."""

    # int | float: ints stay ints (an int range), floats a float range
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = None
    choices: tuple[Any, ...] | None = None

    @model_validator(mode="after")
    def one_kind(self) -> SearchRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give low/high or choices, not both")
            if not self.choices:
                raise ValueError("choices is empty: list at least one value")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high, or choices")
        if not self.low < self.high:
            raise ValueError(f"empty range: low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int) and (self.step is None or float(self.step).is_integer())


class TuneParams(Section):
    """A use case's ``tune:`` section."""

    # a Keras history key of the validation split (val_loss, val_auc, ...): never the test split
    metric: str
    direction: Literal["maximize", "minimize"]
    trials: int = Field(ge=1)
    # dotted path under the use case (train.learning_rate) -> its range or choices
    params: dict[str, SearchRange]
    # trials TPE samples at random before it models the results
    startup_trials: int = Field(default=5, ge=1)
    # median pruning: once this many trials finished, a trial whose validation value after an epoch
    # (past its first prune_warmup_epochs) is behind the median of theirs at that epoch stops
    prune: bool = True
    prune_startup_trials: int = Field(default=2, ge=0)
    prune_warmup_epochs: int = Field(default=1, ge=0)
    # the first trial trains the values params.yaml ships, so the best trial is compared with them
    include_shipped: bool = True


def parse_tune(raw: Any, section: Mapping[str, Any], where: str) -> TuneParams:
    """Type a ``tune:`` section and check every path names a value the use case's merged section
    (``section``: its defaults included) holds under train or features; ConfigError names the key."""
    if not raw:
        raise ConfigError(f"{where}: no tune section; declare metric, direction, trials and params (see README)")
    tune = parse_section(TuneParams, raw, where)
    if not tune.params:
        raise ConfigError(f"{where}.params: empty; name at least one train.* value to search")
    if not tune.metric.startswith("val_"):
        raise ConfigError(f"{where}.metric: {tune.metric!r} is not a validation metric; use a Keras "
                          "validation key such as val_loss or val_auc (the test split is never searched on)")
    for path in tune.params:
        parts = path.split(".")
        if parts[0] not in SEARCHABLE or len(parts) < 2:
            raise ConfigError(f"{where}.params.{path}: only values under {' or '.join(SEARCHABLE)} are searched")
        node: Any = section
        for depth, part in enumerate(parts):
            if not isinstance(node, Mapping) or part not in node:
                known = sorted(node) if isinstance(node, Mapping) else []
                raise ConfigError(f"{where}.params.{path}: {'.'.join(parts[:depth + 1])!r} is not a key of this use "
                                  f"case (its defaults included); keys there: {known}")
            node = node[part]
        span = tune.params[path]
        if tune.include_shipped and span.choices is not None and node not in span.choices:
            raise ConfigError(f"{where}.params.{path}: the shipped value {node!r} is not one of the choices; add it "
                              "(the first trial trains the shipped values) or set include_shipped: false")
    return tune


def shipped_values(tune: TuneParams, section: Mapping[str, Any]) -> dict[str, Any]:
    """The value params.yaml gives each searched path today."""
    values = {}
    for path in tune.params:
        node: Any = section
        for part in path.split("."):
            node = node[part]
        values[path] = node
    return values


def _choice_key(value: Any) -> Any:
    """Optuna stores choices that are None/bool/int/float/str; a list (hidden_units) as its YAML text."""
    return value if value is None or isinstance(value, bool | int | float | str) else repr(list(value))


def suggest(trial, tune: TuneParams) -> dict[str, Any]:
    """The trial's value of every searched path (Optuna's ``suggest_*``)."""
    values = {}
    for path, span in tune.params.items():
        if span.choices is not None:
            keys = [_choice_key(c) for c in span.choices]
            values[path] = span.choices[keys.index(trial.suggest_categorical(path, keys))]
        elif span.low is None or span.high is None:
            raise ConfigError(f"tune.params.{path}: give low and high, or choices")
        elif span.is_int:
            values[path] = trial.suggest_int(path, int(span.low), int(span.high), step=int(span.step or 1), log=span.log)
        else:
            values[path] = trial.suggest_float(path, float(span.low), float(span.high), step=span.step, log=span.log)
    return values


def storage_for(path: Path):
    """The study's journal file: trials asked in one process are trained in others."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _engines(tune: TuneParams, seed: int):
    """The seeded TPE sampler and the pruner a study (and every process opening it) uses."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials)
    # steps are epoch numbers (1, 2, ...): the first prune_warmup_epochs never prune
    warmup = tune.prune_warmup_epochs + 1
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=tune.prune_startup_trials, n_warmup_steps=warmup)
              if tune.prune else optuna.pruners.NopPruner())
    return sampler, pruner


def create_study(tune: TuneParams, seed: int, journal: Path, shipped: Mapping[str, Any] | None = None):
    """A new seeded TPE study (median pruner) in ``journal``; with ``shipped``, its first trial
    trains those values."""
    import optuna

    sampler, pruner = _engines(tune, seed)
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage_for(journal), sampler=sampler, pruner=pruner,
                                direction=tune.direction)
    if shipped is not None and tune.include_shipped:
        study.enqueue_trial({path: _choice_key(value) for path, value in shipped.items()}, user_attrs={"shipped": True})
    return study


@dataclass(frozen=True)
class TrialSpec:
    """A trial asked of the study: its number and id, and the values it trains."""

    number: int
    trial_id: int
    values: dict[str, Any]
    shipped: bool = False


def ask_trials(study, tune: TuneParams, count: int) -> list[tuple[Any, TrialSpec]]:
    """``count`` new trials of ``study`` with their suggested values."""
    asked = []
    for _ in range(count):
        trial = study.ask()
        # the storage id lets a worker process open this trial (Optuna has no public accessor for it)
        spec = TrialSpec(trial.number, trial._trial_id, suggest(trial, tune), bool(trial.user_attrs.get("shipped")))
        asked.append((trial, spec))
    return asked


@dataclass(frozen=True)
class TrialOutcome:
    """What one trial trained to: its state, its value on the validation metric (at the epoch whose
    weights were kept), the per-epoch curve of that metric, and the time it took."""

    number: int
    values: dict[str, Any]
    state: Literal["complete", "pruned", "failed"]
    value: float | None
    curve: list[float] = field(default_factory=list)
    epochs: int = 0
    seconds: float = 0.0
    error: str = ""
    shipped: bool = False


def pruning_callback(trial, metric: str):
    """A Keras callback that reports ``metric`` to the Optuna trial after every epoch and stops
    the fit when the pruner says the trial cannot catch up (``pruned`` is then True)."""
    import keras

    class ReportToTrial(keras.callbacks.Callback):
        pruned = False

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(metric)
            if value is None or not math.isfinite(float(value)):
                return
            trial.report(float(value), epoch + 1)
            if trial.should_prune():
                self.pruned = True
                self.model.stop_training = True

    return ReportToTrial()


@contextlib.contextmanager
def reporting(journal: Path, tune: TuneParams, seed: int, spec: TrialSpec) -> Iterator[Any]:
    """While a trial trains (in this process or a worker): every Keras fit reports to the trial
    and stops when the study's pruner says so."""
    import optuna

    sampler, pruner = _engines(tune, seed)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage_for(journal), sampler=sampler, pruner=pruner)
    callback = pruning_callback(optuna.trial.Trial(study, spec.trial_id), tune.metric)
    with fit_callbacks(callback):
        yield callback


def outcome_of(spec: TrialSpec, fit: FitResult, metric: str, pruned: bool, seconds: float) -> TrialOutcome:
    """A finished trial's outcome from its fit history; ConfigError when the metric is not in it."""
    curve = fit.history.get(metric)
    if curve is None:
        raise ConfigError(f"tune.metric: {metric!r} is not recorded while this model trains; its validation keys "
                          f"are {sorted(k for k in fit.history if k.startswith('val_'))}")
    kept = curve[fit.best_epoch - 1] if 0 < fit.best_epoch <= len(curve) else curve[-1]
    state: Literal["complete", "pruned"] = "pruned" if pruned else "complete"
    return TrialOutcome(spec.number, spec.values, state, float(kept), list(curve), len(curve), seconds, shipped=spec.shipped)


def tell_outcome(study, trial, outcome: TrialOutcome) -> None:
    """Record a trial's outcome in the study (a pruned trial keeps its last reported value)."""
    import optuna

    states = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED,
              "failed": optuna.trial.TrialState.FAIL}
    value = outcome.value if outcome.state == "complete" else None
    study.tell(trial, value, state=states[outcome.state])


def best_outcome(outcomes: list[TrialOutcome], direction: str) -> TrialOutcome | None:
    """The complete trial with the best value (the earliest on a tie), or None."""
    complete = [o for o in outcomes if o.state == "complete" and o.value is not None and math.isfinite(o.value)]
    if not complete:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    return max(complete, key=lambda o: (sign * float(o.value or 0.0), -o.number))
