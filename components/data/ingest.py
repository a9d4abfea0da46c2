"""Read a use case's source (shipped file, local path, mirror, http(s)/s3 URL) into a snapshot."""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
import tempfile
import warnings
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


def _holds_files(folder: Path, files: dict[str, str] | None) -> bool:
    return folder.is_dir() and all((folder / name).is_file() for name in files or {})


def _candidate_ok(path: Path, data: DataParams) -> bool:
    return _holds_files(path, data.files) if data.files else path.exists()


@dataclass(frozen=True)
class SourcePlan:
    """Where a use case's data will come from: ``local``, ``mirror`` or ``url`` (``found``),
    and the local path it is read from (mirror copies and downloads land there)."""

    kind: str
    found: str
    local: Path


def plan_source(use_case: str, data: DataParams, settings: Settings) -> SourcePlan:
    """Decide, without copying or downloading, where the data comes from: ``source`` in the repo,
    else the mirror, else the official URL; DataUnavailableError says what was tried."""
    url: str | None
    if data.source.startswith(REMOTE_SCHEMES):  # one-file URL source, cached under data/downloads
        name = data.source.rstrip("/").rsplit("/", 1)[-1]
        local, url = settings.repo_root / "data" / "downloads" / use_case / name, data.source
    else:
        local = Path(data.source).expanduser()
        local = local if local.is_absolute() else settings.repo_root / local
        url = data.url
    if _candidate_ok(local, data):
        return SourcePlan("local", str(local), local)
    tried = [str(local)]
    if settings.data_mirror is not None and data.mirror_subdir:
        mirrored = settings.data_mirror / data.mirror_subdir
        if _candidate_ok(mirrored, data):
            return SourcePlan("mirror", str(mirrored), local)
        tried.append(str(mirrored))
    if url:
        return SourcePlan("url", url, local)
    wanted = f" ({', '.join(data.files)})" if data.files else ""
    raise DataUnavailableError(
        f"no data for {use_case!r}: tried {'; '.join(tried)}. "
        f"Set FUNNEL_DATA_MIRROR to a folder that holds {data.mirror_subdir or 'the data'}{wanted}, "
        "or put the data at the first path."
    )


def resolve_source(use_case: str, data: DataParams, settings: Settings) -> Path:
    """The local path of a use case's data, copying it from the mirror or downloading it first.

    With ``files`` in params.yaml, a folder only counts when it holds every listed file. Mirror
    copies whose checksums match and downloads (checked while fetching) land in ``source``, so
    the next run and ``dvc repro`` read them locally; a mirror copy that does not match is
    returned as it is, so reading it fails with the checksum error.
    """
    plan = plan_source(use_case, data, settings)
    if plan.kind == "local":
        return plan.local
    if plan.kind == "mirror":
        mirrored = Path(plan.found)
        if data.files and checksum_mismatches(mirrored, data.files):
            return mirrored
        return copy_into(mirrored, plan.local, data)
    try:
        return fetch_source(plan.found, plan.local, data)
    except DataUnavailableError as exc:
        raise DataUnavailableError(
            f"no data for {use_case!r}: {exc}. Set FUNNEL_DATA_MIRROR to a folder that holds "
            f"{data.mirror_subdir or 'the data'}, or put the data at {plan.local}."
        ) from exc


def copy_into(found: Path, local: Path, data: DataParams) -> Path:
    """Copy a mirror's file (or its listed files) to the use case's local source path."""
    if data.files:
        local.mkdir(parents=True, exist_ok=True)
        for name in data.files:
            shutil.copyfile(found / name, local / name)
    elif found.is_dir():
        shutil.copytree(found, local, dirs_exist_ok=True)
    else:
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found, local)
    logger.info("copied %s to %s", found, local)
    return local


def fetch_source(url: str, local: Path, data: DataParams) -> Path:
    """Download ``url`` to ``local``: one file, a ``.zip`` holding ``files``, or a base URL of ``files``."""
    if not data.files:
        return fetch_url(url, local, data.sha256)
    local.mkdir(parents=True, exist_ok=True)
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if name.endswith(".zip"):
        with tempfile.TemporaryDirectory(dir=local) as scratch:
            archive = fetch_url(url, Path(scratch) / name, data.sha256)
            extract_members(archive, Path(scratch), data.files)
            bad = checksum_mismatches(Path(scratch), data.files)
            if bad:
                raise DataUnavailableError(f"{url}: {'; '.join(bad)}")
            for member in data.files:
                (Path(scratch) / member).replace(local / member)
        return local
    for member, sha in data.files.items():
        fetch_url(f"{url.rstrip('/')}/{member}", local / member, sha)
    return local


def extract_members(archive: Path, folder: Path, files: dict[str, str]) -> None:
    """Extract the listed files from a zip archive into ``folder`` (matched by file name)."""
    import zipfile

    try:
        with zipfile.ZipFile(archive) as zipped:
            members = {Path(info.filename).name: info for info in zipped.infolist() if not info.is_dir()}
            missing = [name for name in files if name not in members]
            if missing:
                raise DataUnavailableError(f"{archive.name} does not contain {missing}")
            for name in files:
                with zipped.open(members[name]) as source, (folder / name).open("wb") as target:
                    shutil.copyfileobj(source, target)
    except zipfile.BadZipFile as exc:
        raise DataUnavailableError(f"{archive}: not a valid zip archive ({exc})") from exc


def checksum_mismatches(folder: Path, files: dict[str, str]) -> list[str]:
    """One message per listed file whose sha256 differs from params.yaml."""
    problems = []
    for name, expected in files.items():
        actual = sha256_file(folder / name)
        if actual != expected:
            problems.append(
                f"{folder / name}: sha256 {actual} does not match the expected {expected} in params.yaml "
                "(corrupt or changed copy; restore the original file or update the checksum)"
            )
    return problems


def _source_files(path: Path, data: DataParams) -> list[Path]:
    """The files to read: the listed ``files`` of a folder, or the path itself."""
    if path.is_dir() and data.files:
        return [path / name for name in data.files]
    if path.is_dir():
        raise DataUnavailableError(f"{path} is a folder; list the files to read under data.files in params.yaml")
    return [path]


def read_csv(path: Path, data: DataParams) -> pd.DataFrame:
    """Delimited text: with a header row, or header-less with ``columns`` named in params.yaml.

    Header-less files are Criteo-style ad logs too (label, integer and categorical columns);
    empty fields become missing values.
    """
    frames = []
    for file in _source_files(path, data):
        if data.columns:
            # index_col=False + warnings as errors: a line with too many fields is a parse error,
            # never a silently shifted index or dropped field
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                try:
                    frame = pd.read_csv(file, sep=data.delimiter, header=None, names=list(data.columns),
                                        index_col=False, dtype=dict(data.dtypes or {}))
                except pd.errors.ParserWarning as exc:
                    raise ValueError(f"{file.name}: more fields than the {len(data.columns)} columns named") from exc
        else:
            frame = pd.read_csv(file, sep=data.delimiter, dtype=dict(data.dtypes or {}))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_libfm(path: Path, data: DataParams) -> pd.DataFrame:
    """libFM lines ``label idx:value ...`` with one one-hot index per field, fields in order.

    ``columns`` names the label and then each field; a field's value is its feature index (as a
    string category). Labels > 0 are positives (1), the rest negatives (0). Listed files are pooled
    in the order given.
    """
    if not data.columns or len(data.columns) < 2:
        raise DataValidationError("libfm", ["data.columns must name the label and each field for format libfm"])
    label, *fields = data.columns
    rows: list[list[str]] = []
    for file in _source_files(path, data):
        with file.open(encoding="ascii") as handle:
            for number, line in enumerate(handle, start=1):
                tokens = line.split()
                if not tokens:
                    continue
                if len(tokens) != len(fields) + 1 or not all(":" in t for t in tokens[1:]):
                    raise ValueError(
                        f"{file.name} line {number}: expected a label and {len(fields)} idx:value pairs, "
                        f"got {len(tokens)} tokens"
                    )
                rows.append([tokens[0], *(t.split(":", 1)[0] for t in tokens[1:])])
    frame = pd.DataFrame(rows, columns=[label, *fields])
    frame[label] = (pd.to_numeric(frame[label]) > 0).astype("int64")
    return frame


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
    "libfm": read_libfm,
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
    if data.files and path.is_dir():
        bad = checksum_mismatches(path, data.files)
        if bad:
            raise DataValidationError(use_case, bad)
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


def replay_periods(frame: pd.DataFrame, replay) -> pd.Series:
    """Each row's period number (0, 1, ...) in release order."""
    values = frame[replay.column]
    if replay.order:
        rank = {v: i for i, v in enumerate(replay.order)}
        unknown = sorted(set(values.astype(str)) - {str(v) for v in replay.order})
        if unknown:
            raise DataValidationError(replay.column, [f"replay: values {unknown[:5]} of {replay.column} are not in data.replay.order"])
        return values.map(lambda v: rank.get(v, rank.get(str(v)))).astype(int)
    if not replay.periods:
        raise DataValidationError(replay.column, ["replay needs data.replay.order or data.replay.periods in params.yaml"])
    ranks = pd.to_numeric(values).rank(method="first")
    return ((ranks - 1) * replay.periods // len(frame)).astype(int)


def apply_replay(frame: pd.DataFrame, replay, as_of) -> tuple[pd.DataFrame, int]:
    """The rows released by date ``as_of`` (a ``datetime.date``), and how many periods that is."""
    from datetime import date

    if replay is None or not replay.enabled:
        return frame, 0
    periods = replay_periods(frame, replay)
    elapsed = (as_of - date.fromisoformat(replay.start_date)).days
    released = max(1, elapsed // replay.period_days + 1)
    logger.info("replay %s: %d period(s) released by %s", replay.column, min(released, periods.max() + 1), as_of)
    return frame.loc[periods < released].reset_index(drop=True), int(min(released, periods.max() + 1))
