"""The BentoML peer of the serving benchmark: a registered funnel model behind a batching BentoML service.

Runs in the peers' venv (`make peers`), started by benchmarks/serving_benchmark.py as
``bentoml serve benchmarks/peers/bento_service.py:FunnelPeer`` with the model's URI in
``FUNNEL_PEER_MODEL_URI`` (e.g. ``models:/intent/3``, with ``MLFLOW_TRACKING_URI`` set) and the
repository on ``PYTHONPATH`` (the models' pyfunc loader is ``components.pyfunc``). Tuned as a user
would for small tabular requests: ``FUNNEL_PEER_WORKERS`` worker processes (one per core) and
adaptive batching of up to ``FUNNEL_PEER_MAX_BATCH`` rows waiting at most
``FUNNEL_PEER_MAX_LATENCY_MS``. Request: ``POST /predict`` with ``{"rows": [{<column>: <value>}]}``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import bentoml

WORKERS = int(os.environ.get("FUNNEL_PEER_WORKERS", "2"))
MAX_BATCH = int(os.environ.get("FUNNEL_PEER_MAX_BATCH", "4"))
MAX_LATENCY_MS = int(os.environ.get("FUNNEL_PEER_MAX_LATENCY_MS", "1000"))


@bentoml.service(workers=WORKERS, traffic={"timeout": 30})
class FunnelPeer:
    def __init__(self) -> None:
        import mlflow

        self.model = mlflow.pyfunc.load_model(os.environ["FUNNEL_PEER_MODEL_URI"])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, rows: list[dict[str, Any]]) -> list[Any]:
        import pandas as pd

        predictions = self.model.predict(pd.DataFrame.from_records(rows))
        if isinstance(predictions, pd.DataFrame):  # named outputs, some of them arrays per row
            return json.loads(predictions.to_json(orient="records"))
        return [float(p) for p in predictions]
