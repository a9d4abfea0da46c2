"""Read a use case's source (shipped file, local path, mirror, http(s)/s3 URL) into a snapshot."""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.config import DataParams, Settings
from components.errors import DataUnavailableError, DataValidationError

logger = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.parquet"
REMOTE_SCHEMES = ("http://", "https://", "s3://", "gs://", "az://")


@dataclass(frozen=True)
class Snapshot:
    """A use case's data as read this run, written to ``path``."""

    use_case: str
    path: Path
    frame: pd.DataFrame
    source: str

    @property
    def rows(self) -> int:
        return len(self.frame)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_url(url: str, destination: Path, sha256: str | None) -> Path:
    """Download ``url`` through fsspec to ``destination``, checking its sha256 when given."""
    import fsspec

    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        with fsspec.open(url, "rb") as remote, tmp_path.open("wb") as local:
            shutil.copyfileobj(remote, local)
    except Exception as exc:
        tmp_path.unlink(missing_ok=True)
        raise DataUnavailableError(f"could not download {url}: {exc}") from exc
    if sha256 and sha256_file(tmp_path) != sha256:
        actual = sha256_file(tmp_path)
        tmp_path.unlink(missing_ok=True)
        raise DataUnavailableError(
            f"{url}: sha256 {actual} does not match the expected {sha256} in params.yaml; "
            "the file changed upstream or the download is corrupt."
        )
    tmp_path.replace(destination)
    return destination


def resolve_source(use_case: str, data: DataParams, settings: Settings) -> Path:
    """Find the local path of a use case's data: repo file, local path, mirror, then URL."""
    tried: list[str] = []
    if not data.source.startswith(REMOTE_SCHEMES):
        candidate = Path(data.source).expanduser()
        candidate = candidate if candidate.is_absolute() else settings.repo_root / candidate
        if candidate.exists():
            return candidate
        tried.append(str(candidate))
    if settings.data_mirror is not None and data.mirror_subdir:
        mirrored = settings.data_mirror / data.mirror_subdir
        if mirrored.exists():
            return mirrored
        tried.append(str(mirrored))
    if data.source.startswith(REMOTE_SCHEMES):
        name = data.source.rstrip("/").rsplit("/", 1)[-1]
        cached = settings.repo_root / "data" / "downloads" / use_case / name
        if cached.exists() and (data.sha256 is None or sha256_file(cached) == data.sha256):
            return cached
        try:
            return fetch_url(data.source, cached, data.sha256)
        except DataUnavailableError as exc:
            tried.append(str(exc))
    raise DataUnavailableError(
        f"no data for {use_case!r}: tried {'; '.join(tried) or data.source}. "
        "Put the file there, or set FUNNEL_DATA_MIRROR to a folder that holds "
        f"{data.mirror_subdir or 'the data'}."
    )


def read_csv(path: Path, data: DataParams) -> pd.DataFrame:
    """A delimited text file with a header row."""
    return pd.read_csv(path, sep=data.delimiter)


def read_sentences(path: Path, data: DataParams) -> pd.DataFrame:
    """UCI Sentiment Labelled Sentences: ``<source>_labelled.txt`` files of ``text<TAB>label``."""
    files = sorted(path.glob("*_labelled.txt")) if path.is_dir() else [path]
    if not files:
        raise DataUnavailableError(f"{path}: no *_labelled.txt files found")
    frames = []
    for file in files:
        # QUOTE_NONE: the imdb file has stray quote characters; with quoting on, 252 rows vanish.
        frame = pd.read_csv(
            file, sep=data.delimiter, header=None, names=["text", "label"],
            quoting=csv.QUOTE_NONE, dtype={"text": "string"}, keep_default_na=False,
        )
        frame["text"] = frame["text"].astype("string").str.strip()
        frame["source"] = file.name.split("_", 1)[0].removesuffix("_cells")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_official_splits(path: Path, data: DataParams) -> pd.DataFrame:
    """A folder holding ``train.csv`` and ``test.csv``; a ``split`` column keeps the official split."""
    frames = []
    for split in ("train", "test"):
        file = path / f"{split}.csv"
        if not file.is_file():
            raise DataUnavailableError(f"{path}: {file.name} is missing (expected train.csv and test.csv)")
        frames.append(pd.read_csv(file, sep=data.delimiter).assign(split=split))
    return pd.concat(frames, ignore_index=True)


def read_creditcard(path: Path, data: DataParams) -> pd.DataFrame:
    """The ULB credit-card samples: all-frauds file + random sample, shared and duplicate rows removed.

    The two files print V1 with different precision, so rows are matched on (Time, V1 rounded to
    6 decimals, Amount).
    """
    files = sorted(path.glob("creditcard_*.csv")) if path.is_dir() else [path]
    if not files:
        raise DataUnavailableError(f"{path}: no creditcard_*.csv files found")
    frames = []
    for file in files:
        frame = pd.read_csv(file, sep=data.delimiter)
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith("Unnamed") or c == ""])
        frames.append(frame.assign(sample=file.stem.removeprefix("creditcard_")))
    pooled = pd.concat(frames, ignore_index=True)
    key = pd.DataFrame({"Time": pooled["Time"], "V1": pooled["V1"].round(6), "Amount": pooled["Amount"]})
    return pooled.loc[~key.duplicated()].reset_index(drop=True)


READERS: dict[str, Callable[[Path, DataParams], pd.DataFrame]] = {
    "csv": read_csv,
    "sentences": read_sentences,
    "official_splits": read_official_splits,
    "creditcard": read_creditcard,
}


def read_source(use_case: str, data: DataParams, settings: Settings) -> tuple[pd.DataFrame, str]:
    """Read a use case's source into a DataFrame; returns the frame and where it came from."""
    path = resolve_source(use_case, data, settings)
    reader = READERS.get(data.format)
    if reader is None:
        raise DataUnavailableError(
            f"{use_case}: unknown data format {data.format!r}; known formats: {sorted(READERS)}"
        )
    if path.is_file() and path.stat().st_size == 0:
        raise DataValidationError(use_case, [f"source file {path} is empty (0 bytes)"])
    try:
        frame = reader(path, data)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(use_case, [f"source file {path} has no data: {exc}"]) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataValidationError(
            use_case, [f"source file {path} could not be parsed as {data.format}: {exc}"]
        ) from exc
    logger.info("read %d rows x %d columns for %s from %s", *frame.shape, use_case, path)
    return frame, str(path)


def write_snapshot(use_case: str, frame: pd.DataFrame, source: str, snapshot_dir: Path) -> Snapshot:
    """Write ``frame`` as the use case's snapshot; identical data gives identical bytes."""
    folder = snapshot_dir / use_case
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SNAPSHOT_FILE
    tmp = folder / f".{SNAPSHOT_FILE}.tmp"
    frame.to_parquet(tmp, index=False, compression="snappy")
    tmp.replace(path)
    return Snapshot(use_case=use_case, path=path, frame=frame, source=source)


def read_snapshot(use_case: str, snapshot_dir: Path) -> Snapshot:
    """Read the snapshot a previous ingest wrote."""
    path = snapshot_dir / use_case / SNAPSHOT_FILE
    if not path.is_file():
        raise DataUnavailableError(
            f"no snapshot for {use_case!r} at {path}; run `funnel stage snapshot {use_case}` first."
        )
    return Snapshot(use_case=use_case, path=path, frame=pd.read_parquet(path), source=str(path))
