"""Model builders on small real slices: shapes, finite loss, beats a trivial baseline, saves and loads."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from components.config import load_params
from components.features import split_frame
from components.ingest import read_sentences
from components.predict import RowScorer
from components.train import fit_model
from components.use_cases import get_use_case
from tests.conftest import ROOT, SENTIMENT_DIR, intent_slice


def configured(name: str, epochs: int):
    params = load_params(ROOT / "params.yaml", {f"use_cases.{name}.train.max_epochs": epochs})
    use_case = get_use_case(name)
    return use_case, use_case.configure(params)


def fit_and_score(name: str, frame, epochs: int):
    use_case, config = configured(name, epochs)
    splits = split_frame(frame, config.label, 0.25, 0.15, config.seed)
    model = use_case.build_model(splits.train, config.features, config.train, config.seed)
    fit = fit_model(model, splits.train, splits.validation, config.label, config.train.batch_size,
                    config.train.max_epochs, config.train.early_stopping_patience, config.seed)
    scores = RowScorer(model).score(splits.test)
    return model, fit, splits, scores, config


def test_tabular_builder_has_one_named_input_per_raw_column_and_learns():
    model, fit, splits, scores, config = fit_and_score("intent", intent_slice(2000), epochs=5)
    expected = set(config.features.numeric) | set(config.features.categorical)
    assert {t.name for t in model.inputs} == expected
    assert all(np.isfinite(v) for v in fit.history["loss"])
    assert scores.shape == (len(splits.test),)
    assert roc_auc_score(splits.test["Revenue"], scores) > 0.75  # a trivial scorer gets 0.5


def test_tabular_model_scores_unseen_categories(tmp_path):
    model, _, splits, _, _ = fit_and_score("intent", intent_slice(1000), epochs=1)
    rows = splits.test.head(3).copy()
    rows["Browser"] = 999
    rows["Month"] = "Jan"  # not in the data at all
    assert np.all(np.isfinite(RowScorer(model).score(rows)))


def test_text_model_handles_empty_text_and_round_trips(tmp_path):
    import keras

    frame = read_sentences(SENTIMENT_DIR, get_use_case("sentiment").configure(load_params(ROOT / "params.yaml")).params.data)
    model, fit, splits, scores, _ = fit_and_score("sentiment", frame, epochs=3)
    assert roc_auc_score(splits.test["label"], scores) > 0.75
    odd = {"text": np.array(["", "!!!", "great"])}
    before = RowScorer(model).score(odd)
    assert np.all(np.isfinite(before))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(RowScorer(loaded).score(odd), before, rtol=1e-5)


@pytest.mark.parametrize("name", ["intent", "sentiment"])
def test_builders_are_deterministic_for_a_seed(name):
    use_case, config = configured(name, 1)
    frame = intent_slice(400) if name == "intent" else read_sentences(SENTIMENT_DIR, config.params.data).head(400)
    first = use_case.build_model(frame, config.features, config.train, config.seed)
    second = use_case.build_model(frame, config.features, config.train, config.seed)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_intent_text_classifier_serves_class_names():
    from components.models.text_intents import with_class_names
    from tests.conftest import support_slice

    use_case, config = configured("support", 3)
    frames = support_slice(train_per_class=20, test_per_class=4)
    train = frames["train"]
    classes = tuple(sorted(train["category"].unique()))
    model = use_case.build_model(train, config.features, config.train, config.seed, classes=classes)
    index = {c: i for i, c in enumerate(classes)}
    fit = fit_model(model, train, frames["test"], lambda f: f["category"].map(index).to_numpy("int64"),
                    config.train.batch_size, 3, 3, config.seed)
    assert all(np.isfinite(fit.history["loss"]))
    outputs = RowScorer(with_class_names(model, classes)).score_outputs({"text": np.array(["", "my card has not arrived yet"])})
    assert set(outputs) == {"label", "probability", "probabilities"}
    assert outputs["probabilities"].shape == (2, 77)
    assert set(outputs["label"].reshape(-1)) <= set(classes)
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-4)
