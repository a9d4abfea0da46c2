"""The MLflow adapter: the custom flavor logs a Keras model that pyfunc scores on raw rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def test_pyfunc_scores_raw_rows_with_strings_and_keras_flavor_loads(tmp_path):
    import keras
    import mlflow
    from mlflow.models import Model

    from components.release import registry

    number = keras.Input(shape=(1,), name="amount", dtype="float32")
    word = keras.Input(shape=(1,), name="channel", dtype="string")
    hot = keras.layers.StringLookup(vocabulary=["ads", "mail"], output_mode="one_hot")(word)
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()([number, hot]))
    model = keras.Model({"amount": number, "channel": word}, out)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'db.sqlite'}")
    example = pd.DataFrame({"amount": [1.0, 2.5], "channel": ["ads", "unknown"]})
    with mlflow.start_run():
        info = Model.log(artifact_path=None, name="model", flavor=sys.modules["components.release.registry"],
                         registered_model_name="toy", keras_model=model,
                         signature=registry.build_signature(model), input_example=example)
    assert info.registered_model_version == 1
    scored = mlflow.pyfunc.load_model("models:/toy/1").predict(pd.DataFrame({"amount": [3, 4], "channel": ["mail", "ads"]}))
    expected = model({"amount": np.array([[3.0], [4.0]], "float32"), "channel": np.array([["mail"], ["ads"]])})
    np.testing.assert_allclose(scored, np.asarray(expected).reshape(-1), rtol=1e-5)
    assert isinstance(mlflow.keras.load_model("models:/toy/1"), keras.Model)


def test_the_input_example_is_synthetic_never_a_real_row():
    import keras

    from components.config import ColumnRule
    from components.release.examples import synthetic_example

    amount = keras.Input(shape=(1,), name="amount", dtype="float32")
    visits = keras.Input(shape=(1,), name="visits", dtype="int64")
    channel = keras.Input(shape=(1,), name="channel", dtype="string")
    email = keras.Input(shape=(1,), name="email", dtype="string")
    model = keras.Model({"amount": amount, "visits": visits, "channel": channel, "email": email}, amount)
    rules = {"amount": ColumnRule(type="float", min=0.0, max=100.0), "visits": ColumnRule(type="int", min=1),
             "channel": ColumnRule(type="str", allowed=("ads", "mail"))}
    example = synthetic_example({t.name: t.dtype for t in model.inputs}, rules)
    assert example.to_dict("list") == {"amount": [50.0, 50.0], "visits": [1, 1], "channel": ["ads", "ads"],
                                       "email": ["example", "example"]}


def test_a_synthetic_example_of_raw_columns_parses_through_the_transforms():
    import pandas as pd

    from components.data.ingest import derive, request_columns, snapshot_transforms
    from components.data.transforms import parse_transforms
    from components.release.examples import synthetic_example

    raw = pd.DataFrame({"ordered_at": ["2024-05-01 10:00:00", "2024-05-02 11:30:00"], "amount": [1.0, 2.0]})
    steps = parse_transforms([{"op": "parse_time", "column": "ordered_at", "format": "%Y-%m-%d %H:%M:%S"},
                              {"op": "time_part", "column": "ordered_at", "parts": ["hour"]},
                              {"op": "drop", "columns": ["ordered_at"]}], "t")
    state = snapshot_transforms(derive("shop", raw, steps))
    columns = request_columns(state, {"ordered_at_hour": "int64", "amount": "float32"})
    assert columns == {"ordered_at": "string", "amount": "float32"}
    example = synthetic_example(columns, {}, state)
    assert example["ordered_at"].tolist() == ["2000-01-01 00:00:00"] * 2
    from components.data.ingest import load_transforms

    assert load_transforms(state).apply(example)["ordered_at_hour"].tolist() == [0, 0]


def toy_model():
    import keras

    number = keras.Input(shape=(1,), name="amount", dtype="float32")
    word = keras.Input(shape=(1,), name="channel", dtype="string")
    hot = keras.layers.StringLookup(vocabulary=["ads", "mail"], output_mode="one_hot")(word)
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()([number, hot]))
    return keras.Model({"amount": number, "channel": word}, out)


def test_a_model_logged_without_mlflows_reload_check_is_the_same_model_and_serves_its_example(tmp_path):
    # given a model, its signature and an input example that fits it
    import mlflow
    from mlflow.models import Model

    from components.release import registry

    model = toy_model()
    signature = registry.build_signature(model)
    example = pd.DataFrame({"amount": [1.0, 2.5], "channel": ["ads", "unknown"]})
    registry.check_input_example("toy", model, signature, example)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'db.sqlite'}")
    logged = {}
    # when it is logged with MLflow's own check (save, load back, score the example) and without it
    for checked in (True, False):
        with mlflow.start_run():
            info = Model.log(artifact_path=None, name="model", flavor=sys.modules["components.release.registry"],
                             keras_model=model, signature=signature, input_example=example,
                             validate_serving_input=checked)
        folder = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / str(checked))))
        logged[checked] = (info, folder)
    # then both hold the same files and the same MLmodel (ids and times apart)
    files = {checked: sorted(p.relative_to(f).as_posix() for p in f.rglob("*") if p.is_file())
             for checked, (_, f) in logged.items()}
    assert files[True] == files[False]
    assert "serving_input_example.json" in files[False]
    volatile = {"model_uuid", "model_id", "run_id", "utc_time_created", "artifact_path"}
    mlmodels = {checked: {k: v for k, v in Model.load(str(f / "MLmodel")).to_dict().items() if k not in volatile}
                for checked, (_, f) in logged.items()}
    assert mlmodels[True] == mlmodels[False]
    # and the model logged without the check loads and scores its own saved example as serving parses it
    output = tmp_path / "predictions.json"
    mlflow.models.predict(logged[False][0].model_uri, input_path=str(logged[False][1] / "serving_input_example.json"),
                          content_type="json", output_path=str(output), env_manager="local")
    assert len(json.loads(output.read_text())["predictions"]) == len(example)


@pytest.mark.parametrize(("example", "named"), [
    (pd.DataFrame({"channel": ["ads"]}), "does not fit"),                       # a column is missing
    (pd.DataFrame({"amount": ["many"], "channel": ["ads"]}), "does not fit"),   # text where a number goes
])
def test_an_input_example_that_does_not_fit_the_signature_is_refused_before_logging(example, named):
    from components.errors import InputSchemaError
    from components.release import registry

    model = toy_model()
    with pytest.raises(InputSchemaError, match=named) as caught:
        registry.check_input_example("toy", model, registry.build_signature(model), example)
    assert "many" not in str(caught.value)
