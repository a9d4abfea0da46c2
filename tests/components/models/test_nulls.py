"""Missing values in every model builder: nulls in every input train, score and serve.

Numeric nulls are imputed inside the model (training median, plus a missing flag for columns
that had nulls in training); categorical nulls are ``MISSING_TOKEN`` / ``MISSING_ID``, a vocabulary
entry of their own; a null text is an empty text; a null id the recommender cannot take fails
validation naming the column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.config import load_params
from components.data.readers import read_sentences
from components.data.splits import split_frame
from components.errors import DataValidationError, InputSchemaError
from components.models import ctr, recommender, tabular, text, text_intents
from components.models.ctr import CtrFeatures, CtrTrain
from components.models.recommender import Interactions, RecommendFeatures, RecommendTrain
from components.models.scorer import MISSING_ID, MISSING_TOKEN, RowScorer, input_spec, rows_to_tensors
from components.models.tabular import TabularFeatures
from components.models.text import TextFeatures
from components.tasks.multiclass import class_codes
from components.training.fit import fit_with_params
from components.use_cases import get_use_case
from tests.conftest import ROOT, SENTIMENT_DIR, intent_slice, support_slice


def configured(name: str, epochs: int):
    params = load_params(ROOT / "params.yaml", {f"use_cases.{name}.train.max_epochs": epochs})
    use_case = get_use_case(name)
    return use_case, use_case.configure(params)


def with_nulls(frame: pd.DataFrame, columns, share: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """A copy of ``frame`` with about ``share`` of the rows null in each of ``columns`` (different
    rows per column): NaN in numeric columns, None in the others (strings, booleans)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for column in columns:
        rows = rng.random(len(out)) < share
        numeric = pd.api.types.is_numeric_dtype(out[column]) and not pd.api.types.is_bool_dtype(out[column])
        out[column] = out[column].astype("float64" if numeric else object)
        out.loc[rows, column] = np.nan if numeric else None
    return out


def features_of(model, layer: str, rows) -> np.ndarray:
    """The output of one of ``model``'s layers for raw ``rows``."""
    import keras

    return RowScorer(keras.Model(model.inputs, model.get_layer(layer).output)).score_outputs(rows)["output"]


def assert_differs_only_by_one_flag(null_row: np.ndarray, value_row: np.ndarray) -> None:
    """The two feature vectors are equal except one position: the missing flag, 1 vs 0."""
    differ = np.flatnonzero(null_row.reshape(-1) != value_row.reshape(-1))
    assert len(differ) == 1, differ
    assert (null_row.reshape(-1)[differ[0]], value_row.reshape(-1)[differ[0]]) == (1.0, 0.0)


# --- the one conversion of raw rows --------------------------------------------------------------

def test_rows_to_tensors_gives_each_null_its_one_meaning_per_input_dtype():
    rows = pd.DataFrame({
        "amount": pd.Series([1.5, None, np.nan], dtype=object),
        "city": pd.Series(["Berlin", None, np.nan], dtype=object),
        "browser": pd.array([3, None, 4], dtype="Int64"),
        "flag": pd.array([True, None, False], dtype="boolean"),
    })
    spec = {"amount": "float32", "city": "string", "browser": "int64", "flag": "float32"}
    tensors = {name: t.numpy().reshape(-1) for name, t in rows_to_tensors(spec, rows).items()}
    np.testing.assert_array_equal(tensors["amount"], np.array([1.5, np.nan, np.nan], dtype="float32"))
    assert tensors["city"].tolist() == [b"Berlin", b"", b""]  # never b"None" / b"nan"
    assert tensors["browser"].tolist() == [3, MISSING_ID, 4]
    np.testing.assert_array_equal(tensors["flag"], np.array([1.0, np.nan, 0.0], dtype="float32"))


@pytest.mark.parametrize(("dtype", "values", "message"), [
    ("float32", ["1.5", "lots"], "'amount' must hold numbers"),
    ("int64", [1.0, 2.5], "'amount' must hold whole numbers"),
])
def test_rows_to_tensors_names_the_column_a_value_does_not_fit(dtype, values, message):
    with pytest.raises(InputSchemaError, match=message) as error:
        rows_to_tensors({"amount": dtype}, {"amount": np.array(values, dtype=object)})
    assert "lots" not in str(error.value)
    assert "2.5" not in str(error.value)


@pytest.mark.parametrize(("module", "features", "expected"), [
    (tabular, TabularFeatures(numeric=("a",), log_scaled=(), categorical=("b",), slices=()), []),
    (text, TextFeatures(text="text", slices=()), []),
    (text_intents, TextFeatures(text="text", slices=()), []),
    (ctr, CtrFeatures(categorical=("c",), numeric=("n",), slices=()), []),
    (recommender, RecommendFeatures(user="user_id", item="item_id"), ["user_id", "item_id"]),
])
def test_each_builder_names_the_columns_that_must_hold_no_nulls(module, features, expected):
    assert module.non_null_columns(features) == expected


# --- tabular -------------------------------------------------------------------------------------

def test_tabular_model_trains_on_nulls_in_every_input_and_imputes_them_inside(tmp_path):
    import keras

    use_case, config = configured("intent", epochs=2)
    features = config.features
    columns = [*features.numeric, *features.categorical]
    clean = intent_slice(1200)
    splits = split_frame(with_nulls(clean, columns), config.label, 0.25, 0.15, config.seed)
    assert splits.train[columns].isna().any().all()
    assert splits.test[columns].isna().any().all()

    model = use_case.builder.build(splits.train, features, config.train, config.seed, label=config.label)
    fit = fit_with_params(model, splits.train, splits.validation, config.label, config.train, config.seed)
    assert np.all(np.isfinite(fit.history["loss"]))
    assert np.all(np.isfinite(fit.history["val_loss"]))
    # nulls do not change how a column enters the model (int ids stay int64, booleans float32)
    assert input_spec(model) == input_spec(use_case.builder.build(clean, features, config.train, config.seed))
    scores = RowScorer(model).score(splits.test)
    assert np.all(np.isfinite(scores))
    assert np.all((scores >= 0) & (scores <= 1))

    # a null numeric is the training median, plus its missing flag
    row = splits.test.head(1)
    median = float(np.nanmedian(splits.train["ProductRelated_Duration"]))
    null_row, median_row = (features_of(model, "features", row.assign(ProductRelated_Duration=v)) for v in (np.nan, median))
    assert_differs_only_by_one_flag(null_row, median_row)
    # a column without nulls in training gets no flag: a null there scores as its median exactly
    no_flag = use_case.builder.build(with_nulls(clean, [c for c in columns if c != "ExitRates"]), features,
                                   config.train, config.seed)
    assert "ExitRates_missing" not in {layer.name for layer in no_flag.layers}
    pair = pd.concat([row.assign(ExitRates=np.nan), row.assign(ExitRates=float(clean["ExitRates"].median()))])
    null_score, median_score = RowScorer(no_flag).score(pair)
    assert null_score == pytest.approx(median_score, rel=1e-6)

    # categorical nulls are a vocabulary entry of their own; None and blank are the same
    assert MISSING_TOKEN in model.get_layer("Month_lookup").get_vocabulary()
    assert MISSING_ID in model.get_layer("Browser_lookup").get_vocabulary()
    none, blank = RowScorer(model).score(pd.concat([row.assign(Month=None, VisitorType=None),
                                                    row.assign(Month="", VisitorType=" ")]))
    assert none == blank

    model.save(tmp_path / "tabular.keras")
    loaded = keras.saving.load_model(tmp_path / "tabular.keras")
    np.testing.assert_allclose(RowScorer(loaded).score(splits.test), scores, rtol=1e-5)


# --- text ----------------------------------------------------------------------------------------

def test_text_model_trains_on_null_texts_and_scores_a_null_as_an_empty_text():
    use_case, config = configured("sentiment", epochs=2)
    frame = read_sentences(SENTIMENT_DIR, config.params.data).sample(n=1200, random_state=7)
    splits = split_frame(with_nulls(frame, [config.features.text]), config.label, 0.25, 0.15, config.seed)
    assert splits.train[config.features.text].isna().any()
    model = use_case.builder.build(splits.train, config.features, config.train, config.seed, label=config.label)
    fit = fit_with_params(model, splits.train, splits.validation, config.label, config.train, config.seed)
    assert np.all(np.isfinite(fit.history["loss"]))
    assert np.all(np.isfinite(RowScorer(model).score(splits.test)))
    none, nan, empty = RowScorer(model).score({"text": np.array([None, np.nan, ""], dtype=object)})
    assert none == nan == empty  # not the n-grams of "None" or "nan"


def test_intent_text_model_trains_and_serves_null_texts():
    use_case, config = configured("support", epochs=2)
    frames = support_slice(train_per_class=10, test_per_class=2)
    train, validation = with_nulls(frames["train"], ["text"]), with_nulls(frames["test"], ["text"], seed=1)
    assert train["text"].isna().any()
    classes = tuple(sorted(train[config.label].unique()))
    model = use_case.builder.build(train, config.features, config.train, config.seed, label=config.label, classes=classes)
    fit = fit_with_params(model, train, validation, class_codes(classes, config.label), config.train, config.seed)
    assert np.all(np.isfinite(fit.history["loss"]))
    outputs = RowScorer(use_case.builder.make_serving(model, classes)).score_outputs(
        {"text": np.array([None, "", "my card has not arrived yet"], dtype=object)})
    probabilities = outputs["probabilities"]
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(probabilities[0], probabilities[1])
    assert set(outputs["label"].reshape(-1)) <= set(classes)


# --- ctr -----------------------------------------------------------------------------------------

def criteo_like(rows: int, seed: int) -> pd.DataFrame:
    """Click logs shaped like Criteo's: hashed categorical fields and integer counts."""
    rng = np.random.default_rng(seed)
    site = rng.choice(["68fd1e64", "80e26c9b", "fb936136", "287130e0", "05db9164"], rows)
    device = rng.choice(["1cfdf714", "d4bb7bd8", "7e0ccccf"], rows)
    visits = rng.poisson(4, rows).astype("float64")
    depth = rng.integers(0, 60, rows).astype("float64")
    logit = np.where(np.isin(site, ["68fd1e64", "fb936136"]), 1.0, -1.0) + 0.2 * (visits - 4)
    clicked = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"clicked": clicked, "C1": site, "C2": device, "I1": visits, "I2": depth})


def test_ctr_model_trains_on_nulls_in_every_field_and_imputes_counts_inside(tmp_path):
    import keras

    features = CtrFeatures(categorical=("C1", "C2"), numeric=("I1", "I2"), count_crosses=(["C1", "C2"],), slices=())
    params = CtrTrain(embedding_dim=4, cross_layers=1, hidden_units=(8,), dropout=0.0, embedding_l2=0.0,
                      learning_rate=0.01, batch_size=128, max_epochs=2, early_stopping_patience=1,
                      validation_fraction=0.2, count_bins=4096)
    frame = with_nulls(criteo_like(1500, seed=3), ["C1", "C2", "I1", "I2"])
    train, validation, test = frame.iloc[:1000], frame.iloc[1000:1300], frame.iloc[1300:]
    model = ctr.build_ctr_model(train, features, params, seed=1)
    fit = fit_with_params(model, train, validation, "clicked", params, seed=1)
    assert np.all(np.isfinite(fit.history["loss"]))
    assert np.all(np.isfinite(fit.history["val_loss"]))
    scores = RowScorer(model).score(test)
    assert np.all(np.isfinite(scores))

    assert model.get_layer("counts_fill").values == [float(np.nanmedian(train[c])) for c in ("I1", "I2")]
    row = test.head(1)
    null_row, median_row = (features_of(model, "fields", row.assign(I2=v)) for v in (np.nan, float(np.nanmedian(train["I2"]))))
    assert_differs_only_by_one_flag(null_row, median_row)
    assert MISSING_TOKEN in model.get_layer("C1_lookup").get_vocabulary()
    none, blank = RowScorer(model).score(pd.concat([row.assign(C1=None), row.assign(C1="")]))
    assert none == blank

    model.save(tmp_path / "ctr.keras")
    np.testing.assert_allclose(RowScorer(keras.saving.load_model(tmp_path / "ctr.keras")).score(test), scores, rtol=1e-5)


# --- recommender ---------------------------------------------------------------------------------

def test_recommender_refuses_null_ids_naming_the_column_and_serves_a_null_user_as_a_cold_user():
    from components.tasks.ranking import fit_recommender

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": rng.integers(1, 40, 600), "item_id": rng.integers(1, 60, 600)}).drop_duplicates()
    features = RecommendFeatures(user="user_id", item="item_id")
    params = RecommendTrain(hidden_units=(), embedding_dim=8, input_dropout=0.5, l2=0.0, learning_rate=0.01,
                            top_k=5, batch_size=16, max_epochs=1, eval_every_epochs=1,
                            early_stopping_patience=1, validation_fraction=0.1)
    bad = frame.astype({"item_id": "float64"})
    bad.loc[bad.index[3], "item_id"] = np.nan
    with pytest.raises(DataValidationError, match="'item_id' has 1 null"):
        recommender.build_recommender(bad, features, params, seed=1)

    seen = Interactions.from_frame(frame, features)
    network = recommender.build_recommender(frame, features, params, seed=1)
    fit = fit_recommender(network, seen, seen, params, seed=1)
    assert np.all(np.isfinite(fit.history["loss"]))
    serving = recommender.build_serving(network, seen, features, params.top_k)
    out = RowScorer(serving).score_outputs({"user_id": np.array([None, 999999], dtype=object)})
    np.testing.assert_array_equal(out["items"][0], out["items"][1])  # a null user is an unknown user: most popular
    np.testing.assert_array_equal(out["scores"][0], out["scores"][1])
