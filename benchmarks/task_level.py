"""What the task-level benchmarks share: one use case trained and evaluated as the flow's
train and evaluate stages do (same split, model and same-run peer), without the engines."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_use_case(name: str, overrides: dict[str, Any] | None = None):
    """(use case, config, frame) of use case ``name`` with params.yaml changed by ``overrides``,
    its data read as ``funnel retrain`` reads it."""
    from components.config import load_params, load_settings
    from components.data.ingest import read_source
    from components.use_cases import get_use_case

    params = load_params(ROOT / "params.yaml", overrides or {})
    use_case = get_use_case(name, params)
    config = use_case.configure(params)
    frame, _ = read_source(name, config.params.data, load_settings())
    return use_case, config, frame


def train_and_evaluate(name: str, overrides: dict[str, Any]):
    """(use case, config, trained model, evaluation, train seconds) of use case ``name`` with
    params.yaml changed by ``overrides`` (``load_use_case``)."""
    use_case, config, frame = load_use_case(name, overrides)
    started = time.perf_counter()
    trained = use_case.task.train(use_case, config, frame)
    trained_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as plots:
        evaluation = use_case.task.evaluate(use_case, config, trained, Path(plots))
    return use_case, config, trained, evaluation, trained_s
