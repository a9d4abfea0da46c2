"""What each server of the serving benchmark is sent and answers (pure: no server, no model).

One row of a model's raw columns becomes the request body each server takes: funnel serve's
``{"rows": [...]}``, ``mlflow models serve``'s ``{"dataframe_records": [...]}``, MLServer's Open
Inference Protocol (V2) tensors and the BentoML service's ``{"rows": [...]}``; each reply gives
back its predictions as a flat list, so the benchmark can check every server scores alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

# V2 datatype of each column dtype of a funnel signature (strings travel as BYTES)
V2_DATATYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32", "string": "BYTES",
                "bool": "BOOL"}


def v2_request(columns: Mapping[str, str], row: Mapping[str, Any]) -> dict[str, Any]:
    """One row as a V2 inference request for MLServer's MLflow runtime, one tensor per column.

    Without string columns: (1, 1) tensors, which the runtime decodes as the signature says (a
    dict of arrays for funnel's named-tensor signatures). With one: the request's content type
    is ``pd`` (a DataFrame of (1,) columns), because the runtime's NumPy codec makes strings a
    fixed-width ``<U`` array, which MLflow refuses for an ``object`` tensor.

    Raises ValueError naming the column when ``row`` lacks one or its dtype has no V2 datatype."""
    frame = any(dtype == "string" for dtype in columns.values())
    inputs = []
    for name, dtype in columns.items():
        if dtype not in V2_DATATYPES:
            raise ValueError(f"column {name!r} has dtype {dtype!r}, which has no V2 datatype (known: "
                             f"{sorted(V2_DATATYPES)})")
        if name not in row:
            raise ValueError(f"the row has no value for column {name!r}; the model takes {list(columns)}")
        inputs.append({"name": name, "shape": [1] if frame else [1, 1], "datatype": V2_DATATYPES[dtype],
                       "data": [row[name]]})
    return {"inputs": inputs, "parameters": {"content_type": "pd"}} if frame else {"inputs": inputs}


def mlserver_model_settings(name: str, model_uri: str, max_batch_size: int, max_batch_time_ms: float,
                            parallel_workers: int | None = None) -> dict[str, Any]:
    """MLServer's model-settings.json: the MLflow runtime on ``model_uri`` with adaptive batching
    (up to ``max_batch_size`` requests, waiting at most ``max_batch_time_ms``)."""
    if max_batch_size < 1 or max_batch_time_ms < 0:
        raise ValueError(f"adaptive batching needs max_batch_size >= 1 and max_batch_time_ms >= 0, got "
                         f"{max_batch_size} and {max_batch_time_ms}")
    settings: dict[str, Any] = {
        "name": name, "implementation": "mlserver_mlflow.MLflowRuntime",
        "max_batch_size": max_batch_size, "max_batch_time": max_batch_time_ms / 1000,
        "parameters": {"uri": model_uri},
    }
    if parallel_workers is not None:
        settings["parallel_workers"] = parallel_workers
    return settings


def reply_predictions(server: str, reply: Any) -> list[Any]:
    """The predictions in one server's decoded JSON reply, flattened to one list.

    ``server``: funnel | mlflow | mlserver | bentoml. Raises ValueError saying what the reply lacks."""
    if server in ("funnel", "mlflow"):
        if not isinstance(reply, dict) or "predictions" not in reply:
            raise ValueError(f"a {server} reply carries 'predictions'; this one has {_keys(reply)}")
        return flatten(reply["predictions"])
    if server == "mlserver":
        if not isinstance(reply, dict) or not isinstance(reply.get("outputs"), list) or not reply["outputs"]:
            raise ValueError(f"a V2 reply carries a non-empty 'outputs' list; this one has {_keys(reply)}")
        values: list[Any] = []
        for output in sorted(reply["outputs"], key=lambda o: o.get("name", "")):
            data = output.get("data", [])
            if (output.get("parameters") or {}).get("content_type") == "pd_json":  # a list per row, as JSON text
                data = [json.loads(cell) for cell in data]
            values += flatten(data)
        return values
    if server == "bentoml":
        return flatten(reply)
    raise ValueError(f"unknown server {server!r}: funnel, mlflow, mlserver or bentoml")


def flatten(value: Any) -> list[Any]:
    """Nested lists and dicts (dict values in key order) as one flat list of scalars."""
    if isinstance(value, dict):
        return [x for key in sorted(value) for x in flatten(value[key])]
    if isinstance(value, list | tuple):
        return [x for item in value for x in flatten(item)]
    return [value]


def max_gap(expected: list[Any], got: list[Any]) -> float:
    """The largest |difference| between two flat prediction lists (0 when every value is equal,
    inf when they differ in length or in a value that is not a number)."""
    if len(expected) != len(got):
        return math.inf
    gap = 0.0
    for a, b in zip(expected, got, strict=True):
        if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
            gap = max(gap, abs(float(a) - float(b)))
        elif a != b:
            return math.inf
    return gap


def _keys(reply: Any) -> str:
    return f"keys {sorted(reply)[:10]}" if isinstance(reply, dict) else f"a {type(reply).__name__}"
