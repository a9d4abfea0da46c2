"""Fit a Keras model's linear softmax head as a convex problem (multinomial logistic regression).

When everything below the head is fixed (a frozen encoder's vectors, TF-IDF bags adapted on the
training texts), training the last Dense layer is logistic regression: L-BFGS solves it to its
optimum on every training row, where Adam with early stopping stops short and holds rows out.
The solution is written into the Keras layer, so the registered model is the same Keras model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from components.errors import ConfigError
from components.training.fit import FitResult, fit_with_params

logger = logging.getLogger(__name__)


def layer_features(model, below: str, frame: pd.DataFrame, batch_rows: int):
    """The output of layer ``below`` (everything under the head) for ``frame``'s rows, as a sparse
    CSR matrix built batch by batch (TF-IDF bags are mostly zeros; memory stays per batch)."""
    import keras
    import scipy.sparse as sp

    from components.models.scorer import input_spec, rows_to_tensors

    features = keras.Model(model.inputs, model.get_layer(below).output)
    spec = input_spec(model)
    parts = []
    for start in range(0, len(frame), batch_rows):
        batch = rows_to_tensors(spec, frame.iloc[start:start + batch_rows])
        values = np.asarray(features.predict_on_batch(batch), dtype="float32")
        parts.append(sp.csr_matrix(values.reshape(len(values), -1)))
    return sp.vstack(parts).tocsr()


def fit_logistic_head(
    model, train: pd.DataFrame, label: Callable[[pd.DataFrame], np.ndarray], *, below: str, head: str,
    c: float, max_iter: int, batch_rows: int, class_weight: dict[int, float] | None = None,
) -> FitResult:
    """Solve the softmax layer ``head`` of ``model`` on ``train`` (L-BFGS, L2 penalty 1/``c`` as
    scikit-learn defines it) from the features of layer ``below``, and set its weights.

    Every class code in 0..units-1 must occur in ``train`` (the task's classes are the training
    split's), so the solution's rows line up with the layer's outputs."""
    from sklearn.linear_model import LogisticRegression

    layer = model.get_layer(head)
    units = int(layer.units)
    y = label(train)
    if sorted(np.unique(y).tolist()) != list(range(units)):
        raise ConfigError(f"the {head!r} layer has {units} outputs but the training rows hold "
                          f"{len(np.unique(y))} of its classes; the logistic head needs every class in training")
    started = time.perf_counter()
    x = layer_features(model, below, train, batch_rows)
    solver = LogisticRegression(C=c, max_iter=max_iter, class_weight=class_weight)
    solver.fit(x, y)
    kernel, bias = layer.get_weights()
    if kernel.shape != (x.shape[1], units):
        raise ConfigError(f"the {head!r} layer reads {kernel.shape[0]} features, not the {x.shape[1]} of "
                          f"{below!r}; the logistic head needs the softmax layer right above it (hidden_units: 0)")
    layer.set_weights([solver.coef_.T.astype(kernel.dtype), solver.intercept_.astype(bias.dtype)])
    seconds = time.perf_counter() - started
    iterations = int(np.max(solver.n_iter_))
    if iterations >= max_iter:
        logger.warning("logistic head of %s stopped at max_iter=%d before converging; raise it in params.yaml",
                       model.name, max_iter)
    logger.info("fit %s: logistic head (C=%s) on %d rows x %d features, %d L-BFGS iterations in %.1fs",
                model.name, c, x.shape[0], x.shape[1], iterations, seconds)
    return FitResult(model=model, epochs_run=iterations, best_epoch=iterations, fit_seconds=seconds)


def fit_softmax_classifier(
    model, train: pd.DataFrame, validation: pd.DataFrame, label: Callable[[pd.DataFrame], np.ndarray],
    params, seed: int, class_weight: dict[int, float] | None = None,
) -> FitResult:
    """Train a built softmax classifier as its ``train.head`` says (``models.text_intents``): Adam
    with early stopping (``fit_with_params``), or its ``probabilities`` layer solved as logistic
    regression on the output of its ``head_dropout`` layer (the identity outside training)."""
    if params.head == "adam":
        return fit_with_params(model, train, validation, label, params, seed, class_weight)
    if params.hidden_units or len(validation):
        raise ConfigError("train.head: logistic solves the softmax layer on every training row: set "
                          "hidden_units: 0 and validation_fraction: 0 (or use head: adam)")
    return fit_logistic_head(model, train, label, below="head_dropout", head="probabilities", c=params.head_c,
                             max_iter=params.head_max_iter, batch_rows=params.head_batch_rows,
                             class_weight=class_weight)
