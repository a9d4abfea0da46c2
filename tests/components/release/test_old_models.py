"""Models registered by an earlier module layout still load and score (rollback targets)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "models"


@pytest.mark.parametrize("name", ["intent_tabular", "ctr_counts"])
def test_model_saved_by_the_old_layout_loads_and_scores_the_same(name, tmp_path):
    import mlflow

    # given a model folder written by the flat pre-2026-12 layout (loader_module components.registry)
    model_dir = shutil.copytree(FIXTURES / name, tmp_path / name)
    assert "loader_module: components.registry" in (model_dir / "MLmodel").read_text()
    rows = pd.read_csv(FIXTURES / f"{name}.rows.csv")
    expected = pd.read_csv(FIXTURES / f"{name}.scores.csv")["score"].to_numpy()
    # when today's code loads it through MLflow's pyfunc and keras flavors
    scores = np.asarray(mlflow.pyfunc.load_model(str(model_dir)).predict(rows)).reshape(-1)
    keras_model = mlflow.keras.load_model(str(model_dir))
    # then it scores raw rows as it did when it was saved
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    assert keras_model.name


def test_new_models_name_the_stable_loader_and_pin_no_unpublished_package(tmp_path):
    import keras
    import mlflow

    from components.release import registry

    number = keras.Input(shape=(1,), name="amount", dtype="float32")
    model = keras.Model(number, keras.layers.Dense(1, activation="sigmoid")(number))
    registry.save_model(model, str(tmp_path / "m"), signature=registry.build_signature(model))
    assert "loader_module: components.pyfunc" in (tmp_path / "m" / "MLmodel").read_text()
    requirements = (tmp_path / "m" / "requirements.txt").read_text()
    assert "funnel" not in requirements
    assert "tensorflow" in requirements
    scored = mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(pd.DataFrame({"amount": [1.0, 2.0]}))
    assert np.asarray(scored).shape == (2,)
