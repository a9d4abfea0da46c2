"""Does ctr training stay flat in memory and linear in time as the log grows (train.streaming)?

Logs of 0.1M, 1M and 5M rows in frappe's schema (the 10 categorical fields the shipped ``ctr``
use case is configured for, so its params.yaml section trains unchanged) are synthesised by
resampling the real pooled frappe rows (86,582) with replacement and noise: each field of each
row is, with probability ``--noise``, replaced by a draw from that field's real marginal, and
each label flipped with probability ``--label-noise``. Criteo's schema was not used: funnel has
no real Criteo rows, and inventing its 13 count fields would be fake data. The logs are written
in parquet row groups of ``common.snapshot_row_group_rows`` to a temporary folder (never
committed: frappe may not be redistributed) and removed afterwards unless ``--keep``.

For each log, a fresh child process trains the ctr task from the stream (``train_stream``) and
evaluates it (``evaluate``: test labels and scores kept, the LightGBM peer on a seeded sample),
then another fresh child scores the whole log with ``components.serving.batch.score_file``, the
function ``funnel score`` runs (here with the Keras model the first child saved, instead of one
loaded from the MLflow registry). Each child's wall time and peak RSS (``os.wait4``'s
``ru_maxrss``) are printed, with rows/s and the ratios 5M / 0.1M (targets: time <= 50x, i.e.
linear, and peak RSS <= 2x).

Usage: .venv/bin/python benchmarks/scaling_benchmark.py [--rows 100000,1000000,5000000] [--epochs 1]
       [--noise 0.1] [--label-noise 0.02] [--workdir DIR] [--keep]
Timed numbers: run it under ``flock /tmp/funnel-bench.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USE_CASE = "ctr"


def real_frappe():
    """The pooled real frappe rows, read from the data mirror (as the ctr use case reads them)."""
    from components.config import load_params, load_settings
    from components.data.ingest import read_source
    from components.use_cases import get_use_case

    settings = load_settings()
    params = load_params(settings.params_path)
    config = get_use_case(USE_CASE).configure(params)
    frame, _ = read_source(USE_CASE, config.params.data, settings)
    return frame, params.common.snapshot_row_group_rows


def synthesise(frame, rows: int, noise: float, label_noise: float, seed: int, chunk_rows: int):
    """``rows`` rows resampled from ``frame`` with field and label noise, ``chunk_rows`` at a time."""
    import numpy as np

    rng = np.random.default_rng(seed)
    fields = [c for c in frame.columns if c != "label"]
    for start in range(0, rows, chunk_rows):
        size = min(chunk_rows, rows - start)
        chunk = frame.iloc[rng.integers(0, len(frame), size)].reset_index(drop=True)
        for column in fields:
            swap = rng.random(size) < noise
            donors = frame[column].to_numpy()[rng.integers(0, len(frame), int(swap.sum()))]
            values = chunk[column].to_numpy().copy()
            values[swap] = donors
            chunk[column] = values
        flip = rng.random(size) < label_noise
        chunk["label"] = np.where(flip, 1 - chunk["label"].to_numpy(), chunk["label"].to_numpy())
        yield chunk


def write_log(path: Path, rows: int, noise: float, label_noise: float, seed: int) -> None:
    from components.data.stream import write_row_groups

    frame, group_rows = real_frappe()
    written = write_row_groups(synthesise(frame, rows, noise, label_noise, seed, group_rows), path, group_rows)
    assert written == rows


def child_train(data: Path, epochs: int, model_path: Path, plots: Path) -> dict:
    """Train and evaluate ctr from the stream of ``data``; returns the figures as a dict."""
    from components.config import load_params, load_settings
    from components.data.stream import stream_use_case
    from components.use_cases import get_use_case

    settings = load_settings()
    params = load_params(settings.params_path, {f"use_cases.{USE_CASE}.train.max_epochs": epochs,
                                                f"use_cases.{USE_CASE}.train.streaming.enabled": True})
    use_case = get_use_case(USE_CASE)
    config = use_case.configure(params)
    stream = stream_use_case(data, config, config.train.streaming.batch_rows)
    started = time.perf_counter()
    trained = use_case.task.train_stream(use_case, config, stream)
    trained_s = time.perf_counter() - started
    evaluation = use_case.task.evaluate(use_case, config, trained, plots)
    trained.model.save(model_path)
    return {"train_s": trained_s, "evaluate_s": evaluation.seconds, "epochs": trained.fit.epochs_run,
            "test_rows": evaluation.test_rows, "roc_auc": evaluation.metrics["roc_auc"],
            "peer_roc_auc": evaluation.baseline_metrics["roc_auc"], "peer_note": evaluation.baseline_note}


def child_score(data: Path, model_path: Path, output: Path) -> dict:
    import keras

    from components.config import load_params, load_settings
    from components.models import layers  # noqa: F401 - registers the custom layers for loading
    from components.models.scorer import RowScorer
    from components.serving.batch import score_file

    params = load_params(load_settings().params_path)
    scorer = RowScorer(keras.saving.load_model(model_path))
    result = score_file(scorer, "benchmark", data, output, params.common.batch_chunk_rows)
    return {"rows_scored": result.rows_scored, "rows_rejected": result.rows_rejected, "score_s": result.seconds}


def run_child(*args: str) -> tuple[dict, float, float]:
    """(the child's JSON, its wall seconds, its peak RSS in MiB) of one fresh process."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"child {args[:2]} failed with exit code {process.returncode}")
    last = output.strip().splitlines()[-1]
    return json.loads(last), seconds, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", default="100000,1000000,5000000")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--label-noise", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the synthetic logs and outputs")
    parser.add_argument("--child", choices=["train", "score"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from flows.runtime import configure_environment

        configure_environment()
        if args.child == "train":
            figures = child_train(args.data, args.epochs, args.model, args.out)
        else:
            figures = child_score(args.data, args.model, args.out)
        print(json.dumps(figures))
        return

    sizes = [int(r) for r in args.rows.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="funnel-scaling-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for rows in sizes:
            data = workdir / f"ctr-{rows}.parquet"
            if not data.is_file():
                started = time.perf_counter()
                write_log(data, rows, args.noise, args.label_noise, args.seed)
                print(f"synthesised {rows:,} rows in {time.perf_counter() - started:.0f} s "
                      f"({data.stat().st_size / 2**20:.0f} MiB)", flush=True)
            model = workdir / f"ctr-{rows}.keras"
            trained, train_s, train_rss = run_child("--child", "train", "--data", str(data), "--epochs", str(args.epochs),
                                                    "--model", str(model), "--out", str(workdir / f"plots-{rows}"))
            print(f"{rows:,} rows: train+evaluate {train_s:.0f} s, peak RSS {train_rss:.0f} MiB, {trained}", flush=True)
            scored, score_s, score_rss = run_child("--child", "score", "--data", str(data), "--model", str(model),
                                                   "--out", str(workdir / f"scores-{rows}.csv"))
            (workdir / f"scores-{rows}.csv").unlink(missing_ok=True)
            print(f"{rows:,} rows: score {score_s:.0f} s, peak RSS {score_rss:.0f} MiB, {scored}", flush=True)
            results.append((rows, trained, train_s, train_rss, scored, score_s, score_rss))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nctr scaling, {date.today()}, {platform.node()} ({os.cpu_count()} cores), {args.epochs} epoch(s), "
          f"noise {args.noise}, label noise {args.label_noise}")
    print("| rows | train+evaluate s | rows/s | peak RSS MiB | test ROC AUC (peer) | score s | rows/s | peak RSS MiB |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|")
    for rows, trained, train_s, train_rss, _scored, score_s, score_rss in results:
        print(f"| {rows:,} | {train_s:.0f} | {rows / train_s:,.0f} | {train_rss:,.0f} | "
              f"{trained['roc_auc']:.4f} ({trained['peer_roc_auc']:.4f}) | {score_s:.0f} | {rows / score_s:,.0f} | "
              f"{score_rss:,.0f} |")
    if len(results) > 1:
        small, large = results[0], results[-1]
        factor = large[0] / small[0]
        print(f"\n{large[0]:,} / {small[0]:,} rows = {factor:.0f}x: train+evaluate time {large[2] / small[2]:.1f}x "
              f"(linear: <= {factor:.0f}x), peak RSS {large[3] / small[3]:.2f}x (target <= 2x); "
              f"score time {large[5] / small[5]:.1f}x, peak RSS {large[6] / small[6]:.2f}x")


if __name__ == "__main__":
    main()
