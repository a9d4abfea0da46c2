"""Batch scoring: a file in, each row scored by the champion (or sent to a reject file with the reason)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.errors import DataValidationError

logger = logging.getLogger(__name__)

REASON = "reject_reason"


@dataclass(frozen=True)
class BatchResult:
    input_path: Path
    input_md5: str
    output_path: Path
    rejects_path: Path
    model_version: str
    rows_scored: int
    rows_rejected: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows_scored / self.seconds if self.seconds > 0 else float("nan")


def md5_file(path: Path) -> str:
    return fingerprint(path)[0]


def fingerprint(path: Path) -> tuple[str, int]:
    """The file's md5 and its number of lines, in one read."""
    import hashlib

    digest = hashlib.md5()  # noqa: S324 - a content fingerprint, as DVC uses
    lines = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            lines += block.count(b"\n")
    return digest.hexdigest(), lines


def check_columns(frame: pd.DataFrame, spec: dict[str, str], source: str) -> None:
    """Every model input must be a column: otherwise no row can be scored, so the file is refused."""
    missing = [name for name in spec if name not in frame.columns]
    if missing:
        raise DataValidationError(
            source, [f"columns {missing} are missing; the model needs {list(spec)} (extra columns are kept as they are)"]
        )


def split_valid_rows(frame: pd.DataFrame, spec: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows whose inputs match the model signature (cast to its types), and the rest with a reason."""
    reasons = pd.Series("", index=frame.index, dtype="object")
    cast = {}
    why: str | np.ndarray  # one reason for the column, or one per row
    for name, dtype in spec.items():
        raw = frame[name]
        empty = raw.isna() | (raw.astype(str).str.strip() == "")
        if dtype == "string":
            cast[name] = raw.astype(str)
            bad, why = empty, f"{name} is empty"
        else:
            numbers = pd.to_numeric(raw, errors="coerce")
            bad, why = empty | numbers.isna(), f"{name} is not a number"
            if dtype.startswith("int"):
                fractional = numbers.notna() & (numbers != np.floor(numbers))
                bad |= fractional
                numbers = numbers.where(~bad, 0)
                why = f"{name} is not a whole number"
            cast[name] = numbers.fillna(0).astype(dtype)
            why = np.where(empty, f"{name} is empty", why)
        reasons = reasons.where(~bad, reasons + np.where(reasons == "", "", "; ") + why)
    rejected = reasons != ""
    valid = frame.loc[~rejected].assign(**{k: v[~rejected] for k, v in cast.items()})
    return valid, frame.loc[rejected].assign(**{REASON: reasons[rejected]})


def output_columns(outputs: dict[str, np.ndarray]) -> dict[str, list | np.ndarray]:
    """Model outputs as columns: one probability as ``score``; named outputs by name (lists as JSON)."""
    if set(outputs) == {"output"}:
        return {"score": outputs["output"].reshape(-1)}
    columns: dict[str, list | np.ndarray] = {}
    for name, values in outputs.items():
        if values.ndim > 1 and values.shape[1] > 1:
            columns[name] = [json.dumps(row.tolist()) for row in values]
        else:
            columns[name] = values.reshape(-1)
    return columns


def read_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """CSV or Parquet input, in chunks."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        for start in range(0, len(frame), chunk_rows):
            yield frame.iloc[start : start + chunk_rows]
        return
    yield from pd.read_csv(path, chunksize=chunk_rows)


def score_file(
    scorer,
    model_version: str,
    input_path: Path,
    output_path: Path,
    chunk_rows: int,
    progress: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Score ``input_path`` chunk by chunk with ``scorer`` (a RowScorer); write scores with the
    model version and the input's md5 to ``output_path``, and rejected rows with their reason to
    ``<output>.rejects.csv``. ``progress(done_rows, total_rows)`` is called after each chunk."""
    import time

    started = time.perf_counter()
    if not input_path.is_file():
        raise DataValidationError(str(input_path), [f"{input_path} does not exist"])
    digest, lines = fingerprint(input_path)
    total = _parquet_rows(input_path) if input_path.suffix == ".parquet" else max(lines - 1, 0)
    rejects_path = output_path.with_name(output_path.stem + ".rejects.csv")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    scored = rejected = done = 0
    for index, chunk in enumerate(read_chunks(input_path, chunk_rows)):
        if index == 0:
            check_columns(chunk, scorer.spec, str(input_path))
        valid, bad = split_valid_rows(chunk, scorer.spec)
        if len(valid):
            outputs = scorer.score_outputs({name: valid[name].to_numpy() for name in scorer.spec})
            result = valid.assign(**output_columns(outputs), model_version=model_version, input_md5=digest)
            result.to_csv(output_path, mode="w" if scored == 0 else "a", header=scored == 0, index=False)
        bad.assign(model_version=model_version, input_md5=digest).to_csv(
            rejects_path, mode="w" if index == 0 else "a", header=index == 0, index=False
        )
        scored, rejected, done = scored + len(valid), rejected + len(bad), done + len(chunk)
        if progress is not None:
            progress(done, total)
    if scored == 0:
        output_path.write_text("")
    logger.info("scored %d rows, rejected %d, from %s with v%s", scored, rejected, input_path, model_version)
    return BatchResult(input_path, digest, output_path, rejects_path, model_version, scored, rejected,
                       time.perf_counter() - started)


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows
