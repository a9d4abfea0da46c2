"""Fit a next-item network (components/models/sessions.py) epoch by epoch, early-stopped on the
validation steps' MRR@k (the held-out likelihood is a poorer signal for a ranked list)."""

from __future__ import annotations

import time

import numpy as np

from components.models.sessions import SessionsTrain
from components.training.fit import FitResult, log_epoch


def last_step_model(network):
    """The network's logits at the last position only (what validation and serving need)."""
    import keras

    encoder = network.get_layer("sequence_encoder")
    ids = keras.Input(shape=(encoder.max_length,), dtype="int32", name="item_ids")
    return keras.Model(ids, encoder(ids, last_only=True))


def reciprocal_ranks(logits: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """1 / rank of each target among the logits (padding excluded) when within the top k, else 0;
    an unknown target (0) is a miss."""
    logits = np.array(logits, dtype="float64")
    logits[:, 0] = -np.inf
    mine = logits[np.arange(len(targets)), np.maximum(targets, 0)]
    rank = (logits > mine[:, None]).sum(axis=1) + 1
    return np.where((targets > 0) & (rank <= k), 1.0 / rank, 0.0)


def fit_session_model(network, train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray] | None,
                      params: SessionsTrain, seed: int, epochs: int | None = None) -> FitResult:
    """Fit epoch by epoch with a decaying learning rate; with ``validation`` (prefix inputs, next
    items), measure MRR@top_k after each epoch, stop after ``early_stopping_patience`` epochs
    without improvement and keep the best weights; without it, run ``epochs`` epochs."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs, targets = train
    scorer = last_step_model(network) if validation is not None else None
    started = time.perf_counter()
    best, best_epoch, best_weights, waited, epoch = -1.0, 0, network.get_weights(), 0, 0
    history: dict[str, list[float]] = {"loss": [], "val_mrr": []}
    planned = params.max_epochs if epochs is None else epochs
    while epoch < planned and waited < params.early_stopping_patience:
        network.optimizer.learning_rate.assign(params.learning_rate * params.learning_rate_decay ** epoch)
        result = network.fit(inputs, targets, batch_size=params.batch_size, epochs=1,
                             shuffle=True, verbose=0)
        epoch += 1
        loss = float(result.history["loss"][-1])
        if not np.isfinite(loss):
            raise FloatingPointError("training loss became NaN/inf; lower train.learning_rate in params.yaml")
        history["loss"].append(loss)
        if scorer is None or validation is None:
            log_epoch(network.name, epoch, planned, {"loss": loss})
            best_epoch, best_weights = epoch, None
            continue
        logits = scorer.predict(validation[0], batch_size=1024, verbose=0)
        score = float(reciprocal_ranks(logits, validation[1], params.top_k).mean()) if len(validation[1]) else 0.0
        history["val_mrr"].append(score)
        log_epoch(network.name, epoch, planned, {"loss": loss, "val_mrr": score})
        if score > best:
            best, best_epoch, best_weights, waited = score, epoch, network.get_weights(), 0
        else:
            waited += 1
    if best_weights is not None:
        network.set_weights(best_weights)
    return FitResult(model=network, epochs_run=epoch, best_epoch=max(best_epoch, 1),
                     fit_seconds=time.perf_counter() - started, history=history)
