"""A shop's own table by configuration alone, at full size: the UCI shoppers data exported as
another shop would (renamed columns, a timestamp, a yes/no label, ~10% empty fields in three
columns), the README's params.yaml section, one retrain in a throw-away repository with default
training settings. Prints the model against its same-run peer (paired interval) and the gate.

Usage: .venv/bin/python benchmarks/own_data_benchmark.py [--rows 12330]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the README section lives in tests/flows/test_own_data.py

from flows.runtime import configure_environment  # noqa: E402

configure_environment()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=12330)
    args = parser.parse_args()
    from tests.conftest import make_project
    from tests.flows.test_own_data import SECTION, shop_visits

    with tempfile.TemporaryDirectory() as scratch:
        root = make_project(Path(scratch) / "repo")
        os.environ.update({"FUNNEL_REPO_ROOT": str(root), "FUNNEL_DVC_REMOTE": str(Path(scratch) / "remote")})
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.chdir(root)
        (root / "data" / "shop").mkdir(parents=True)
        shop_visits(args.rows).to_csv(root / "data" / "shop" / "visits.csv", index=False)
        with (root / "params.yaml").open("a", encoding="utf-8") as params:
            params.write(SECTION)
        from prefect.testing.utilities import prefect_test_harness

        from flows.retrain import retrain

        started = time.perf_counter()
        with prefect_test_harness(server_startup_timeout=180):
            state = retrain("shop", return_state=True)
        wall = time.perf_counter() - started
        metrics = json.loads((root / "reports" / "shop" / "metrics.json").read_text())
        peer = metrics["baseline_comparison"]
        print(f"shop ({args.rows} rows, {metrics['test_rows']} test rows), {wall:.1f} s wall")
        for name in ("roc_auc", "pr_auc", "capture_top_10pct", "capture_top_20pct"):
            print(f"  {name:18s} model {metrics['model'][name]:.4f}  {metrics['baseline']['name']} "
                  f"{metrics['baseline'][name]:.4f}")
        print(f"  model - peer on {peer['metric']}: {peer['delta']:+.4f} [95% CI {peer['low']:+.4f}, {peer['high']:+.4f}]"
              f" over {peer['rows']} paired rows")
        print(f"  run: {'promoted' if state.is_completed() else 'not promoted: ' + str(state.message)[:300]}")


if __name__ == "__main__":
    main()
