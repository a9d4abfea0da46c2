"""Batch scoring: a file in, each row scored by the champion (or sent to a reject file with the reason)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from components.data.ingest import untransformed
from components.errors import DataValidationError, FunnelError

if TYPE_CHECKING:
    from components.config import Settings
    from components.data.transforms import FittedTransforms

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


def check_columns(frame: pd.DataFrame, spec: dict[str, str], source: str,
                  optional: frozenset[str] = frozenset()) -> None:
    """Every model input must be a column (an ``optional`` one may be left out): otherwise no row
    can be scored, so the file is refused."""
    missing = [name for name in spec if name not in frame.columns and name not in optional]
    if missing:
        needs = [name for name in spec if name not in optional]
        also = f", optionally {sorted(optional)}" if optional else ""
        raise DataValidationError(
            source, [f"columns {missing} are missing; the model needs {needs}{also} (extra columns are kept as they are)"]
        )


def split_valid_rows(frame: pd.DataFrame, spec: dict[str, str], optional: frozenset[str] = frozenset(),
                     checks: tuple = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows whose inputs match the model signature (cast to its types), and the rest with a reason.

    An ``optional`` input may be a missing column or an empty cell (the model gets a null); the
    model's value ``checks`` (``components.models.scorer.RowCheck``) give further reasons."""
    from components.models.scorer import as_strings, input_problems

    reasons = pd.Series("", index=frame.index, dtype="object")
    cast = {}
    why: str | np.ndarray  # one reason for the column, or one per row
    for name, dtype in spec.items():
        if name not in frame.columns and name in optional:
            continue
        raw = frame[name]
        empty = raw.isna() | (raw.astype(str).str.strip() == "")
        if dtype == "string" and name in optional:
            cast[name] = pd.Series(as_strings(raw.to_numpy()), index=frame.index)
            continue
        if dtype == "string":
            cast[name] = raw.astype(str)
            bad, why = empty, f"{name} is empty"
        elif name in optional:
            numbers = pd.to_numeric(raw, errors="coerce")
            bad, why = ~empty & numbers.isna(), f"{name} is not a number"
            cast[name] = numbers.astype("float64")
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
    if checks:
        columns = {name: values.to_numpy() for name, values in cast.items()}
        for row, name, problem in input_problems(checks, columns):
            reasons.iat[row] = reasons.iat[row] + ("; " if reasons.iat[row] else "") + f"{name}: {problem}"
    rejected = reasons != ""
    valid = frame.loc[~rejected].assign(**{k: v[~rejected] for k, v in cast.items()})
    return valid, frame.loc[rejected].assign(**{REASON: reasons[rejected]})


def check_transforms(fitted: FittedTransforms, frame: pd.DataFrame, source: str) -> None:
    """The raw columns the transforms read must be there, and the transforms must run on their
    types (checked on no rows): otherwise no row can be scored, so the file is refused."""
    from components.data.transforms import input_columns

    check_columns(frame, dict.fromkeys(input_columns(fitted), "raw"), source)
    try:
        fitted.apply(frame.iloc[:0], online=True)
    except DataValidationError as exc:
        raise DataValidationError(source, exc.failures) from None


def transform_rows(fitted: FittedTransforms, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The features of the rows the transforms take, and the raw rows they refuse with the reason.

    Online the transforms work row by row, so a refused chunk is halved until each refused row
    stands alone: a bad row costs about 2 log2(rows) small applies, the good rows around it are kept.
    """
    try:
        return fitted.apply(frame, online=True), frame.iloc[:0].assign(**{REASON: ""})
    except DataValidationError as exc:
        if len(frame) <= 1:
            return fitted.apply(frame.iloc[:0], online=True), frame.assign(**{REASON: "; ".join(exc.failures)})
    middle = len(frame) // 2
    parts = [transform_rows(fitted, frame.iloc[:middle]), transform_rows(fitted, frame.iloc[middle:])]
    return pd.concat([p[0] for p in parts]), pd.concat([p[1] for p in parts])


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


def split_chunk(chunk: pd.DataFrame, spec: dict[str, str], transforms: FittedTransforms | None, source: str,
                first: bool, optional: frozenset[str] = frozenset(),
                checks: tuple = ()) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The rows to score, as the model's inputs and as they are written, and the rejected rows
    with their reason. ``first``: the file's first chunk, whose columns decide if it can be scored.

    With transforms, the raw rows are written and the features go to the model as training gave
    them (a null feature is imputed inside); only the inputs sent as they are get the row checks.
    """
    if transforms is None:
        if first:
            check_columns(chunk, spec, source, optional)
        valid, bad = split_valid_rows(chunk, spec, optional, checks)
        return valid, valid, bad
    chunk = chunk.reset_index(drop=True)  # rows are written without their index: one label per row
    if first:
        check_transforms(transforms, chunk, source)
    features, refused = transform_rows(transforms, chunk)
    if first:
        check_columns(features, spec, source)
    sent = untransformed(transforms, list(spec))
    valid, bad = split_valid_rows(features, {name: spec[name] for name in sent})
    bad = pd.concat([refused, chunk.loc[bad.index].assign(**{REASON: bad[REASON]})]).sort_index()
    return valid, chunk.loc[valid.index], bad


def read_chunks(path: Path, chunk_rows: int) -> Generator[pd.DataFrame, None, None]:
    """CSV or Parquet input, in chunks; a file pandas cannot parse is refused by its error type
    (pandas' message may quote the line it choked on)."""
    try:
        if path.suffix == ".parquet":  # row group by row group: never the whole file in memory
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
            return
        with pd.read_csv(path, chunksize=chunk_rows) as reader:
            yield from reader
    except pd.errors.EmptyDataError:
        raise DataValidationError(str(path), [
            f"{path} is empty (no header line, no rows): nothing to score; export the rows with a header "
            "line of column names"]) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        kind = "Parquet" if path.suffix == ".parquet" else "CSV (comma-separated UTF-8 text with a header line)"
        raise DataValidationError(str(path), [
            f"{path} cannot be read as {kind}: {type(exc).__name__}; export it again in that format"]) from None


def check_input(path: Path) -> None:
    """Refuse a file with nothing to score (missing, empty, a header line without rows) before
    anything is written."""
    if not path.is_file():
        raise DataValidationError(str(path), [f"{path} does not exist"])
    if path.suffix == ".parquet":
        try:
            empty = _parquet_rows(path) == 0  # from the footer: the file is read once, to score it
        except (ValueError, OSError) as exc:
            raise DataValidationError(str(path), [
                f"{path} cannot be read as Parquet: {type(exc).__name__}; export it again in that format"]) from None
    else:
        chunks = read_chunks(path, 1)
        first = next(chunks, None)
        chunks.close()
        empty = first is None or first.empty
    if empty:
        raise DataValidationError(str(path), [f"{path} has column names but no rows: nothing to score"])


def score_file(
    scorer,
    model_version: str,
    input_path: Path,
    output_path: Path,
    chunk_rows: int,
    progress: Callable[[int, int], None] | None = None,
    transforms: FittedTransforms | None = None,
) -> BatchResult:
    """Score ``input_path`` chunk by chunk with ``scorer`` (a RowScorer); write scores with the
    model version and the input's md5 to ``output_path``, and rejected rows with their reason to
    ``<output>.rejects.csv``. ``progress(done_rows, total_rows)`` is called after each chunk.

    With the model's fitted ``transforms`` the file holds raw rows: each chunk is transformed
    (online) into the model's features before it is checked and scored; the raw rows are written.
    """
    import time

    started = time.perf_counter()
    check_input(input_path)
    digest, lines = fingerprint(input_path)
    total = _parquet_rows(input_path) if input_path.suffix == ".parquet" else max(lines - 1, 0)
    rejects_path = output_path.with_name(output_path.stem + ".rejects.csv")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    scored = rejected = done = 0
    for index, chunk in enumerate(read_chunks(input_path, chunk_rows)):
        valid, rows, bad = split_chunk(chunk, scorer.spec, transforms, str(input_path), first=index == 0,
                                       optional=scorer.optional, checks=scorer.checks)
        if len(valid):
            outputs = scorer.score_outputs({name: valid[name].to_numpy() for name in scorer.spec if name in valid})
            result = rows.assign(**output_columns(outputs), model_version=model_version, input_md5=digest)
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


def load_batch_model(settings: Settings, use_case: str, alias: str):
    """(version, RowScorer, fitted transforms or None) of ``<use_case>@<alias>``, from one load."""
    from components.models.scorer import RowScorer
    from components.release import registry

    loaded = registry.load_scorer(settings, use_case, alias)
    if loaded is None:
        raise FunnelError(f"{use_case} has no @{alias} to score with; run `funnel retrain {use_case}` first")
    version, model, _ = loaded
    transforms = registry.model_transforms(model)
    return version, RowScorer(model.get_raw_model()), None if transforms is None else transforms[0]


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows
