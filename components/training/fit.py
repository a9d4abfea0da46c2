"""Fit a built Keras model with early stopping on the validation split."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from components.config import FitSection
from components.data.splits import Splits
from components.errors import ConfigError

logger = logging.getLogger(__name__)

# Keras callbacks every fit in this context adds to its own (a tuning trial's pruning reporter)
_EXTRA_CALLBACKS: ContextVar[tuple[Any, ...]] = ContextVar("fit_callbacks", default=())


@contextlib.contextmanager
def fit_callbacks(*callbacks: Any) -> Iterator[None]:
    """Every ``fit_model`` inside this block also runs ``callbacks`` (per thread / task)."""
    token = _EXTRA_CALLBACKS.set((*_EXTRA_CALLBACKS.get(), *callbacks))
    try:
        yield
    finally:
        _EXTRA_CALLBACKS.reset(token)


@dataclass(frozen=True)
class FitResult:
    model: object
    epochs_run: int
    best_epoch: int
    fit_seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)


def log_epoch(name: str, epoch: int, max_epochs: int, metrics: dict[str, float], seconds: float | None = None) -> None:
    """Log one finished epoch (INFO on this module's logger): ``<model> epoch 3/40 loss=0.4123
    auc=0.8822 val_loss=0.4410 val_auc=0.9012 (2.1s)``. Each record carries ``epoch``, ``max_epochs``,
    ``model``, ``metrics`` and ``seconds`` attributes for progress displays."""
    # training figures first, then validation; the loss leads each group
    order = sorted(metrics, key=lambda k: (k.startswith("val_"), k.removeprefix("val_") != "loss"))
    shown = " ".join(f"{k}={metrics[k]:.4f}" for k in order)
    took = f" ({seconds:.1f}s)" if seconds is not None else ""
    logger.info("%s epoch %d/%d %s%s", name, epoch, max_epochs, shown, took,
                extra={"epoch": epoch, "max_epochs": max_epochs, "model": name, "metrics": metrics,
                       "seconds": seconds})


def epoch_logger(name: str, max_epochs: int):
    """A Keras callback that logs every finished epoch through ``logging`` (``log_epoch``), so a
    long training is never silent while Keras' own output stays off (``verbose=0``). Flows show
    these records: the CLI draws a progress bar from them and Prefect picks up ``components``
    loggers (PREFECT_LOGGING_EXTRA_LOGGERS)."""
    import keras

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            metrics = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
            seconds = time.perf_counter() - getattr(self, "started", time.perf_counter())
            log_epoch(name, epoch + 1, max_epochs, metrics, seconds)

    return EpochLogger()


def make_dataset(model, frame: pd.DataFrame, labels: np.ndarray | None, batch_size: int, shuffle_seed: int | None = None):
    """A batched ``tf.data`` pipeline of the model's named inputs (and labels)."""
    import tensorflow as tf

    from components.models.scorer import input_spec, rows_to_tensors

    inputs = rows_to_tensors(input_spec(model), frame)
    data: dict | tuple[dict, Any]  # the inputs, or (inputs, labels)
    if labels is not None:
        labels = labels.reshape(-1, 1) if labels.dtype.kind == "f" else labels
        data = (inputs, tf.constant(labels))
    else:
        data = inputs
    dataset = tf.data.Dataset.from_tensor_slices(data)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(frame), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fit_model(
    model,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    label: str | Callable[[pd.DataFrame], np.ndarray],
    batch_size: int,
    max_epochs: int,
    patience: int,
    seed: int,
    class_weight: dict[int, float] | None = None,
    monitor: str = "val_loss",
    reduce_lr_factor: float = 0.0,
) -> FitResult:
    """Train until ``monitor`` (validation loss, or a validation metric such as ``val_auc``) stops
    improving; the best weights are restored. With ``reduce_lr_factor``, the learning rate is
    multiplied by it after every epoch without improvement."""
    import keras

    keras.utils.set_random_seed(seed)
    encode = label if callable(label) else (lambda frame: frame[label].astype("float32").to_numpy())
    y_train, y_validation = encode(train), encode(validation)
    train_data = make_dataset(model, train, y_train, batch_size, shuffle_seed=seed)
    validation_data = make_dataset(model, validation, y_validation, batch_size)
    return fit_datasets(model, train_data, validation_data, max_epochs, patience, class_weight, monitor,
                        reduce_lr_factor)


def fit_datasets(model, train_data, validation_data, max_epochs: int, patience: int,
                 class_weight: dict[int, float] | None = None, monitor: str = "val_loss",
                 reduce_lr_factor: float = 0.0) -> FitResult:
    """``fit_model`` on ready ``tf.data`` pipelines of (inputs, labels) batches."""
    import keras

    mode = "min" if monitor.endswith("loss") else "max"
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience, restore_best_weights=True),
        epoch_logger(model.name, max_epochs),
        *_EXTRA_CALLBACKS.get(),
    ]
    if reduce_lr_factor > 0:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=reduce_lr_factor, patience=0))
    started = time.perf_counter()
    with warnings.catch_warnings():
        # a streamed pipeline has no known length: Keras learns an epoch's end when it runs out
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = model.fit(
            train_data,
            validation_data=validation_data,
            epochs=max_epochs,
            callbacks=callbacks,
            class_weight=class_weight,
            shuffle=False,  # the tf.data pipeline shuffles, seeded
            verbose=0,
        )
    seconds = time.perf_counter() - started
    losses = history.history.get("val_loss", [])
    watched = history.history.get(monitor, losses)
    best = (int(np.argmin(watched) if mode == "min" else np.argmax(watched)) + 1) if watched else 0
    if losses and not np.all(np.isfinite(losses)):
        raise FloatingPointError("validation loss became NaN/inf; lower the learning rate in params.yaml")
    logger.info("fit %s: %d epochs (best %d) in %.1fs", model.name, len(losses), best, seconds)
    return FitResult(
        model=model,
        epochs_run=len(losses),
        best_epoch=best,
        fit_seconds=seconds,
        history={k: [float(v) for v in vals] for k, vals in history.history.items()},
    )


def stream_batches(spec: dict[str, str], batches: Iterator[pd.DataFrame], encode: Callable[[pd.DataFrame], np.ndarray],
                   batch_size: int, shuffle_seed: int | None = None) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """(model inputs, labels) of ``batch_size`` rows from a stream of row batches; with
    ``shuffle_seed`` the rows of each read batch are shuffled (seeded) before they are cut, so
    memory holds one read batch and the rows left over from the last."""
    from components.models.scorer import input_arrays

    rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    left: tuple[dict[str, np.ndarray], np.ndarray] | None = None
    for frame in batches:
        if rng is not None:
            frame = frame.iloc[rng.permutation(len(frame))]
        inputs, labels = input_arrays(spec, frame), encode(frame).reshape(-1, 1)
        if left is not None:
            inputs = {k: np.concatenate([left[0][k], v]) for k, v in inputs.items()}
            labels = np.concatenate([left[1], labels])
        whole = len(labels) - len(labels) % batch_size
        for start in range(0, whole, batch_size):
            yield {k: v[start:start + batch_size] for k, v in inputs.items()}, labels[start:start + batch_size]
        left = ({k: v[whole:] for k, v in inputs.items()}, labels[whole:])
    if left is not None and len(left[1]):
        yield left


def stream_dataset(model, batches: Callable[[int], Iterator[pd.DataFrame]], encode: Callable[[pd.DataFrame], np.ndarray],
                   batch_size: int, shuffle_seed: int | None = None):
    """A ``tf.data`` pipeline of (inputs, labels) batches read from ``batches(epoch)`` on every
    pass (one pass per epoch): the rows are never all in memory. With ``shuffle_seed``, each epoch
    reads in its own seeded order (``batches`` decides the order of row groups from the epoch)."""
    import itertools

    import tensorflow as tf

    from components.models.scorer import input_spec

    spec = input_spec(model)
    epochs = itertools.count()
    signature = ({name: tf.TensorSpec((None, 1), dtype) for name, dtype in spec.items()},
                 tf.TensorSpec((None, 1), "float32"))

    def generate():
        epoch = next(epochs)
        seed = None if shuffle_seed is None else shuffle_seed + epoch
        yield from stream_batches(spec, batches(epoch), encode, batch_size, seed)

    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)


def fit_stream_with_params(model, train: Callable[[int], Iterator[pd.DataFrame]],
                           validation: Callable[[int], Iterator[pd.DataFrame]],
                           encode: Callable[[pd.DataFrame], np.ndarray], params: FitSection, seed: int,
                           class_weight: dict[int, float] | None = None) -> FitResult:
    """``fit_with_params`` on rows read as streams of batches (``train(epoch)`` and
    ``validation(epoch)`` start a pass): memory stays flat however many rows there are."""
    import keras

    keras.utils.set_random_seed(seed)
    train_data = stream_dataset(model, train, encode, params.batch_size, shuffle_seed=seed)
    validation_data = stream_dataset(model, validation, encode, params.batch_size)
    return fit_datasets(model, train_data, validation_data, params.max_epochs, params.early_stopping_patience,
                        class_weight, params.early_stopping_monitor, params.reduce_lr_factor)


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model with the splits it saw; ``serving`` is what gets registered and scored.

    Binary models carry the decision threshold chosen on validation; multiclass models their
    classes (the serving model maps argmax to the class name).
    """

    model: Any  # a Keras model (untyped)
    splits: Splits
    fit: FitResult
    threshold: float
    serving: Any = None  # what gets registered: the model, or a serving wrapper around it
    classes: tuple[str, ...] = ()
    # trained from a ``data.stream.SnapshotStream``: the splits hold no rows (only the columns),
    # evaluation reads the stream again
    stream: Any = None

    def __post_init__(self) -> None:
        if self.serving is None:
            object.__setattr__(self, "serving", self.model)


def distribution_scope(strategy: str):
    """The ``tf.distribute`` strategy params.yaml chooses (``common.distribute_strategy``):
    ``default`` (none), ``mirrored`` (all local CPUs/GPUs) or ``multi_worker`` (TF_CONFIG cluster).
    Models built inside the scope create their variables under it; ``fit`` then uses it."""
    import contextlib

    if strategy == "default":
        return contextlib.nullcontext()
    import tensorflow as tf

    strategies = {
        "mirrored": tf.distribute.MirroredStrategy,
        "multi_worker": tf.distribute.MultiWorkerMirroredStrategy,
    }
    if strategy not in strategies:
        raise ConfigError(f"common.distribute_strategy must be one of default, {', '.join(strategies)}; got {strategy!r}")
    return strategies[strategy]().scope()


def fit_with_params(
    model, train: pd.DataFrame, validation: pd.DataFrame, label: str | Callable[[pd.DataFrame], np.ndarray],
    params: FitSection, seed: int, class_weight: dict[int, float] | None = None,
) -> FitResult:
    """``fit_model`` with the batch, epoch and early-stopping settings of a training section."""
    return fit_model(
        model, train, validation, label, batch_size=params.batch_size, max_epochs=params.max_epochs,
        patience=params.early_stopping_patience, seed=seed, class_weight=class_weight,
        monitor=params.early_stopping_monitor, reduce_lr_factor=params.reduce_lr_factor,
    )
