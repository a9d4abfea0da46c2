"""ML wall time per use case: train and evaluate seconds at task level (the flow's train and
evaluate stages without the engines), with the gate's primary metric, so a change meant to save
time can be timed against the code before it with the same data and the same venv.

    .venv/bin/python benchmarks/ml_time_benchmark.py --use-cases support,sessions

Run a copy of this file inside an export of the older code (``git archive <commit> | tar -x -C
DIR``, then ``python DIR/benchmarks/ml_time_benchmark.py``): it times the code of the tree it
sits in. For a use case with a frozen sentence encoder it also times the champion's scoring of
the test texts (the trained model saved and read back, as the registry serves it) with its own
encoder and with the challenger's embedding cache lent to it, in the same run, and says whether
the predicted labels are the same.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from task_level import ROOT, train_and_evaluate  # noqa: E402


def champion_scoring(trained) -> tuple[str, str, str]:
    """(seconds with its own encoder, seconds with the shared cache, labels equal?) for a model
    with a cached frozen sentence encoder; dashes otherwise (or when this code cannot share)."""
    import keras
    import numpy as np

    from components.models.scorer import RowScorer

    try:
        from components.models.encoder import share_embeddings
    except ImportError:
        return "-", "-", "-"
    if not any(getattr(layer, "store", None) is not None for layer in trained.model.layers):
        return "-", "-", "-"
    served = trained.serving or trained.model
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "champion.keras"
        served.save(path)
        outputs, seconds = [], []
        for share in (False, True):
            champion = keras.saving.load_model(path)
            started = time.perf_counter()
            if share:
                share_embeddings(champion, trained.model)
            outputs.append(RowScorer(champion).score_outputs(trained.splits.test))
            seconds.append(time.perf_counter() - started)
    name = "label" if "label" in outputs[0] else "output"
    same = np.array_equal(np.asarray(outputs[0][name]), np.asarray(outputs[1][name]))
    return f"{seconds[0]:.1f}", f"{seconds[1]:.1f}", "yes" if same else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--use-cases", required=True, help="comma-separated use case names")
    args = parser.parse_args()
    from flows.cli import render_table

    rows = []
    for name in [n for n in args.use_cases.split(",") if n]:
        _, config, trained, evaluation, train_s = train_and_evaluate(name, {})
        primary = config.params.gate.primary_metric
        own, shared, same = champion_scoring(trained)
        rows.append([name, f"{train_s:.1f}", f"{evaluation.seconds:.1f}", f"{train_s + evaluation.seconds:.1f}",
                     f"{primary} {evaluation.metrics[primary]:.4f}", own, shared, same])
        print(f"{name}: done", flush=True)
    print(f"\nML wall time at task level, {date.today()}, {platform.node()} ({__import__('os').cpu_count()} cores), "
          f"code in {ROOT}\n")
    print(render_table(rows, ("use case", "train s", "evaluate s", "ML s", "primary metric",
                              "champion own encoder s", "champion shared cache s", "same labels")))


if __name__ == "__main__":
    main()
