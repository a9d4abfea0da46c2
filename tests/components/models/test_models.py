"""Model builders on small real slices: shapes, finite loss, beats a trivial baseline, saves and loads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from components.config import load_params
from components.data.readers import read_sentences
from components.data.splits import split_frame
from components.models.scorer import RowScorer
from components.training.fit import fit_model
from components.use_cases import get_use_case
from tests.conftest import ROOT, SENTIMENT_DIR, frappe_slice, intent_slice, movielens_slice, needs_mirror


def configured(name: str, epochs: int):
    params = load_params(ROOT / "params.yaml", {f"use_cases.{name}.train.max_epochs": epochs})
    use_case = get_use_case(name)
    return use_case, use_case.configure(params)


def fit_and_score(name: str, frame, epochs: int):
    use_case, config = configured(name, epochs)
    splits = split_frame(frame, config.label, 0.25, 0.15, config.seed)
    model = use_case.builder.build(splits.train, config.features, config.train, config.seed, label=config.label)
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
    model, fit, splits, scores, _ = fit_and_score("sentiment", frame.sample(n=1200, random_state=3), epochs=3)
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
    first = use_case.builder.build(frame, config.features, config.train, config.seed, label=config.label)
    second = use_case.builder.build(frame, config.features, config.train, config.seed, label=config.label)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_intent_text_classifier_serves_class_names():
    from components.models.text_intents import with_class_names
    from tests.conftest import support_slice

    use_case, config = configured("support", 3)
    frames = support_slice(train_per_class=8, test_per_class=2)
    train = frames["train"]
    classes = tuple(sorted(train["category"].unique()))
    model = use_case.builder.build(train, config.features, config.train, config.seed, classes=classes)
    index = {c: i for i, c in enumerate(classes)}
    fit = fit_model(model, train, frames["test"], lambda f: f["category"].map(index).to_numpy("int64"),
                    config.train.batch_size, 3, 3, config.seed)
    assert all(np.isfinite(fit.history["loss"]))
    outputs = RowScorer(with_class_names(model, classes)).score_outputs({"text": np.array(["", "my card has not arrived yet"])})
    assert set(outputs) == {"label", "probability", "probabilities"}
    assert outputs["probabilities"].shape == (2, 77)
    assert set(outputs["label"].reshape(-1)) <= set(classes)
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-4)


@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_the_encoder_modes_build_models_that_score_raw_text(mode):
    # given support's builder with the encoder frozen (vectors only, no TF-IDF) or fine-tuned
    from tests.conftest import support_slice

    use_case, config = configured("support", 1)
    train_params = config.train.model_copy(update={"encoder": config.train.encoder.model_copy(update={"mode": mode})})
    frames = support_slice(train_per_class=1, test_per_class=1)
    train = frames["train"].head(32 if mode == "frozen" else 8)
    classes = tuple(sorted(frames["train"]["category"].unique()))
    model = use_case.builder.build(train, config.features, train_params, config.seed, classes=classes)
    layers = {layer.name for layer in model.layers}
    # then a frozen model has no n-gram branch and trains only its head; a fine-tuned one trains the encoder
    assert "word_ngrams" not in layers
    encoder = model.get_layer("sentence_encoder")
    assert (encoder.store is None) == (mode == "finetune")
    assert bool(encoder.trainable_weights) == (mode == "finetune")
    before = [w.numpy().copy() for w in encoder.weights]
    index = {c: i for i, c in enumerate(classes)}
    fit = fit_model(model, train, train, lambda f: f["category"].map(index).to_numpy("int64"), 8, 1, 1, config.seed)
    assert all(np.isfinite(fit.history["loss"]))
    changed = any(not np.array_equal(a, w.numpy()) for a, w in zip(before, encoder.weights, strict=True))
    assert changed == (mode == "finetune")
    probabilities = RowScorer(model).score_outputs({"text": np.array(["", "my card has not arrived yet"])})["output"]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


@needs_mirror
def test_ctr_builder_embeds_each_field_learns_and_scores_unseen_ids(tmp_path):
    import keras

    model, fit, splits, scores, config = fit_and_score("ctr", frappe_slice(6000), epochs=3)
    assert {t.name: t.dtype for t in model.inputs} == dict.fromkeys(config.features.categorical, "string")
    assert roc_auc_score(splits.test["label"], scores) > 0.8  # a trivial scorer gets 0.5
    rows = splits.test.head(3).copy()
    rows["item"] = "999999"  # an app never seen in training
    before = RowScorer(model).score(rows)
    assert np.all(np.isfinite(before))
    model.save(tmp_path / "ctr.keras")
    np.testing.assert_allclose(RowScorer(keras.saving.load_model(tmp_path / "ctr.keras")).score(rows), before, rtol=1e-5)


def test_ctr_builder_takes_criteo_style_counts_with_missing_values():
    from components.models.ctr import CtrFeatures, CtrTrain, build_ctr_model

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "clicked": rng.integers(0, 2, 400),
        "I1": np.where(rng.random(400) < 0.3, np.nan, rng.integers(0, 50, 400)),
        "C1": rng.choice(["68fd1e64", "80e26c9b", "fb936136"], 400),
    })
    features = CtrFeatures(categorical=("C1",), numeric=("I1",), slices=())
    params = CtrTrain(embedding_dim=4, cross_layers=1, hidden_units=(8,), dropout=0.0, embedding_l2=0.0,
                      learning_rate=0.01, batch_size=64, max_epochs=2, early_stopping_patience=1,
                      validation_fraction=0.2, min_category_count=2)
    model = build_ctr_model(frame, features, params, seed=1)
    fit = fit_model(model, frame.iloc[:300], frame.iloc[300:], "clicked", 64, 2, 1, 1)
    assert all(np.isfinite(fit.history["loss"]))
    assert np.all(np.isfinite(RowScorer(model).score(frame.head(20))))  # NaN counts included


@needs_mirror
def test_recommender_serves_top_k_unseen_items_and_popular_items_to_cold_users(tmp_path):
    import keras

    from components.evaluation.baselines import fit_most_popular

    use_case, config = configured("recommend", 5)
    trained = use_case.task.train(use_case, config, movielens_slice(120))
    seen = pd.concat([trained.splits.train, trained.splits.validation])
    users = np.sort(seen["user_id"].unique())[:20]
    scorer = RowScorer(trained.serving)
    out = scorer.score_outputs({"user_id": np.append(users, 999999)})
    k = config.train.top_k
    assert out["items"].shape == (21, k)
    assert out["scores"].shape == (21, k)
    assert np.all(np.diff(out["scores"], axis=1) <= 1e-7)  # best first
    for user, items in zip(users, out["items"][:-1], strict=True):
        assert not set(items) & set(seen.loc[seen["user_id"] == user, "item_id"])
    # an unknown user gets the catalogue's most popular items
    popular = fit_most_popular(seen, "user_id", "item_id").ranked_items[:k]
    assert set(out["items"][-1]) == set(popular)
    trained.serving.save(tmp_path / "rec.keras")
    again = RowScorer(keras.saving.load_model(tmp_path / "rec.keras")).score_outputs({"user_id": users})
    np.testing.assert_array_equal(again["items"], out["items"][:-1])


def test_a_mirrored_strategy_from_params_trains_the_same_builder():
    params = load_params(ROOT / "params.yaml", {"common.distribute_strategy": "mirrored",
                                                "use_cases.intent.train.max_epochs": 2})
    use_case = get_use_case("intent")
    config = use_case.configure(params)
    assert config.distribute == "mirrored"
    trained = use_case.task.train(use_case, config, intent_slice(1500))
    assert "Mirrored" in type(trained.model.optimizer._distribution_strategy).__name__
    assert np.all(np.isfinite(RowScorer(trained.model).score(trained.splits.test)))


@pytest.mark.parametrize("mode", ["tf_idf", "int"])
def test_the_traced_adapt_learns_the_vocabulary_and_idf_of_keras_adapt(mode):
    import keras

    from components.models.text import adapt_vocabulary, adaptation_texts

    # given real review sentences with repeated n-grams and a vocabulary cap that cuts through ties
    data = get_use_case("sentiment").configure(load_params(ROOT / "params.yaml")).params.data
    frame = read_sentences(SENTIMENT_DIR, data)
    texts = adaptation_texts(frame["text"].head(300))

    def layer():
        return keras.layers.TextVectorization(max_tokens=400, split="character", ngrams=(2, 3), output_mode=mode)

    adapted, traced = layer(), layer()
    adapted.adapt(texts)
    adapt_vocabulary(traced, texts)
    # then the vocabulary (order included), the document frequencies and the outputs are the same
    assert traced.get_vocabulary() == adapted.get_vocabulary()
    np.testing.assert_array_equal(traced(texts).numpy(), adapted(texts).numpy())
