"""The topics use case on the full data: retrain seconds, k chosen, NMI / ARI of the procedure
vs the TF-IDF + k-means peer (paired 95% interval), NPMI, topic diversity and the topic table.

    FUNNEL_DATA_MIRROR=/work/shared/data .venv/bin/python benchmarks/topics.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from components.config import load_params, load_settings
    from components.data.ingest import read_source
    from components.use_cases import get_use_case

    params = load_params(ROOT / "params.yaml")
    use_case = get_use_case("topics", params)
    config = use_case.configure(params)
    frame, _ = read_source("topics", config.params.data, load_settings())
    started = time.perf_counter()
    trained = use_case.task.train(use_case, config, frame)
    trained_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as plots:
        evaluation = use_case.task.evaluate(use_case, config, trained, Path(plots))
    result = {
        "train_seconds": round(trained_s, 1), "evaluate_seconds": round(evaluation.seconds, 1),
        "corpus_rows": len(trained.splits.train), "labelled_rows": evaluation.test_rows,
        "model": evaluation.metrics, "baseline": {"name": evaluation.baseline_name, **evaluation.baseline_metrics},
        "vs_baseline": evaluation.baseline_comparison.describe() if evaluation.baseline_comparison else None,
        "intervals": evaluation.intervals,
        "topics": [{k: s[k] for k in ("value", "rows", "share", "example")} for s in evaluation.slices],
        "business": use_case.task.business_sentences(evaluation, use_case.card.business_terms),
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))  # noqa: T201 - a benchmark prints its numbers


if __name__ == "__main__":
    main()
