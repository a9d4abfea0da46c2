"""Training progress: one standard ``logging`` line per epoch, and nothing from Keras itself."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from components.config import load_params
from components.data.splits import split_frame
from components.training.fit import fit_model
from components.use_cases import get_use_case
from tests.conftest import ROOT, intent_slice


def test_every_epoch_is_logged_with_its_losses_and_seconds_and_keras_prints_nothing(caplog, capfd):
    # given the intent model on a small real slice, trained for 3 epochs
    params = load_params(ROOT / "params.yaml", {"use_cases.intent.train.max_epochs": 3})
    use_case = get_use_case("intent")
    config = use_case.configure(params)
    splits = split_frame(intent_slice(800), config.label, 0.25, 0.15, config.seed)
    model = use_case.builder.build(splits.train, config.features, config.train, config.seed, label=config.label)
    capfd.readouterr()

    # when it is fitted
    with caplog.at_level(logging.INFO, logger="components.training.fit"):
        fit = fit_model(model, splits.train, splits.validation, config.label, config.train.batch_size,
                        max_epochs=3, patience=3, seed=config.seed)

    # then one INFO line per epoch: n/max, the training and validation losses and the seconds
    epochs = [r for r in caplog.records if r.name == "components.training.fit" and hasattr(r, "epoch")]
    assert [r.epoch for r in epochs] == list(range(1, fit.epochs_run + 1))
    assert fit.epochs_run == 3
    for record in epochs:
        assert record.levelno == logging.INFO
        assert record.max_epochs == 3
        assert record.seconds > 0
        assert {"loss", "val_loss"} <= set(record.metrics)
        assert all(np.isfinite(v) for v in record.metrics.values())
        assert re.fullmatch(rf"{model.name} epoch {record.epoch}/3 loss=\d+\.\d{{4}} .*val_loss=\d+\.\d{{4}}.* \(\d+\.\ds\)",
                            record.getMessage())
    # ... and Keras' own progress bars stay off
    assert "━" not in capfd.readouterr().out


def test_a_stream_of_row_batches_becomes_training_batches_with_every_row_once():
    from components.training.fit import stream_batches

    frame = pd.DataFrame({"x": np.arange(1000, dtype="float32"), "label": np.arange(1000) % 2})
    spec = {"x": "float32"}

    def reads():
        return (frame.iloc[i:i + 300] for i in range(0, 1000, 300))

    def encode(rows):
        return rows["label"].to_numpy("float32")

    def rows_of(seed):
        return [(inputs["x"].reshape(-1), labels.reshape(-1)) for inputs, labels in stream_batches(spec, reads(), encode, 128, seed)]

    plain, shuffled, again = rows_of(None), rows_of(3), rows_of(3)
    assert [len(x) for x, _ in plain] == [128] * 7 + [104]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in plain]), frame["x"])
    seen = np.concatenate([x for x, _ in shuffled])
    np.testing.assert_array_equal(np.sort(seen), frame["x"])  # every row once
    assert not np.array_equal(seen, frame["x"])  # shuffled within each read batch
    np.testing.assert_array_equal(seen, np.concatenate([x for x, _ in again]))  # seeded
    labels = np.concatenate([y for _, y in shuffled])
    np.testing.assert_array_equal(labels, seen % 2)  # labels travel with their rows
