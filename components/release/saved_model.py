"""What a registered model carries beside its weights, read without MLflow: the pinned serving
environment, the decision threshold tag, the fitted transforms in its metadata, and scoring raw
rows through a loaded pyfunc model (``components.release.registry`` re-exports these)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.data.ingest import load_transforms, request_columns

THRESHOLD_TAG = "decision_threshold"
# MLmodel metadata key of the fitted data.transforms (components/data/ingest.py snapshot_transforms)
TRANSFORMS_KEY = "funnel_transforms"


# a Keras input's dtype as an MLflow tensor (NumPy) type and as an MLflow column type
NUMPY_TYPES = {"string": np.dtype(object), "float32": np.dtype("float32"), "int64": np.dtype("int64"),
               "int32": np.dtype("int32"), "float64": np.dtype("float64"), "bool": np.dtype(bool)}
COLUMN_TYPES = {"string": "string", "float32": "float", "int64": "long", "int32": "integer", "float64": "double",
                "bool": "boolean"}


def request_inputs(keras_model, transforms: dict | None) -> tuple[dict[str, str], frozenset[str]]:
    """(raw column -> Keras dtype, the optional ones) of a model's request: with ``data.transforms``,
    the columns they read, then the inputs they leave alone."""
    from components.models.scorer import optional_inputs

    columns = request_columns(transforms, {t.name: t.dtype for t in keras_model.inputs})
    return columns, frozenset(optional_inputs(keras_model))


def pinned_requirements() -> list[str]:
    """The serving environment, pinned to what trained the model (skips MLflow's slow inference)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    # funnel itself is not pinned: no package index has it; the serving side installs this repository
    for package in ("tensorflow-cpu", "keras", "mlflow", "pandas", "numpy"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def model_transforms(model):
    """(FittedTransforms, raw column -> type family) of a loaded pyfunc model trained with
    data.transforms, or None: what serving applies to raw rows before the Keras model."""
    state = (model.metadata.metadata or {}).get(TRANSFORMS_KEY)
    return (load_transforms(state), dict(state.get("inputs", {}))) if state else None


def decision_threshold(tags) -> float:
    """A version's stored decision threshold (0.5 when it has none)."""
    return float(tags.get(THRESHOLD_TAG, 0.5))


def score_frame(model, frame: pd.DataFrame) -> np.ndarray | pd.DataFrame:
    """Score raw rows through a pyfunc model (index reset: MLflow indexes column 0 by label).

    Probabilities come back as a flat array; named outputs (class name, probability) as a frame.
    """
    output = model.predict(frame.reset_index(drop=True))
    return output if isinstance(output, pd.DataFrame) else np.asarray(output).reshape(-1)
