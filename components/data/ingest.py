"""Read a use case's source (shipped file, local path, mirror, http(s)/s3 URL) into a snapshot."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.config import DataParams, Settings
from components.data.readers import READERS
from components.errors import DataUnavailableError, DataValidationError

logger = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.parquet"
# the fitted data.transforms of a snapshot, kept in its parquet metadata (DataFrame.attrs)
TRANSFORMS_ATTR = "funnel.transforms"
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
        for name in data.files:  # a listed name may be a path inside the mirror folder
            (local / name).parent.mkdir(parents=True, exist_ok=True)
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


def derive(use_case: str, frame: pd.DataFrame, transforms) -> pd.DataFrame:
    """The rows with the use case's ``data.transforms`` applied (fitted on these rows: count
    tables). The fitted state and the raw columns it reads (with their types) travel with the frame
    into the snapshot (parquet metadata) and from there into the registered model, which applies
    the same transforms to raw rows at serving time."""
    if not transforms:
        return frame
    import json

    from components.data.transforms import fit_transforms, input_columns

    fitted = fit_transforms(frame, transforms, use_case=use_case)
    derived = fitted.apply(frame)
    inputs = {column: value_kind(frame[column]) for column in input_columns(fitted) if column in frame.columns}
    derived.attrs[TRANSFORMS_ATTR] = json.dumps({"fitted": fitted.to_dict(), "inputs": inputs}, sort_keys=True)
    return derived


def value_kind(values: pd.Series) -> str:
    """A raw column's type family as requests send it: float, int, bool or str."""
    if pd.api.types.is_bool_dtype(values):
        return "bool"
    if pd.api.types.is_integer_dtype(values):
        return "int"
    return "float" if pd.api.types.is_float_dtype(values) else "str"


def snapshot_transforms(frame: pd.DataFrame) -> dict | None:
    """What a snapshot's transforms state holds (``fitted``: ``FittedTransforms.to_dict()``,
    ``inputs``: raw column -> type family), or None when it was built without transforms."""
    import json

    state = frame.attrs.get(TRANSFORMS_ATTR)
    return json.loads(state) if state else None


RAW_DTYPES = {"float": "float64", "int": "int64", "bool": "bool", "str": "string"}


def request_columns(state: dict | None, model_inputs: dict[str, str]) -> dict[str, str]:
    """What a request to a model sends, column -> dtype: without transforms its inputs; with them,
    the raw columns they read, then the model inputs they neither read nor produce."""
    if not state:
        return dict(model_inputs)
    raw = {name: RAW_DTYPES[kind] for name, kind in state.get("inputs", {}).items()}
    return {**raw, **{name: model_inputs[name] for name in untransformed(load_transforms(state), list(model_inputs))}}


def untransformed(fitted, names: list[str]) -> list[str]:
    """The model inputs among ``names`` the transforms neither read nor produce: sent as they are."""
    from components.data.transforms import input_columns, output_columns

    touched = {*input_columns(fitted), *output_columns(fitted)}
    return [name for name in names if name not in touched]


def load_transforms(state: dict | None):
    """The ``FittedTransforms`` of a transforms state (a snapshot's or a model's), or None."""
    if not state:
        return None
    from components.data.transforms import FittedTransforms

    return FittedTransforms.from_dict(state["fitted"])


def derive_like(snapshot: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Raw ``frame`` with the transforms ``snapshot`` was built with (its fitted count tables), so
    new data is compared with the snapshot on the same features (drift)."""
    fitted = load_transforms(snapshot_transforms(snapshot))
    return frame if fitted is None else fitted.apply(frame)


def write_snapshot(use_case: str, frame: pd.DataFrame, source: str, snapshot_dir: Path,
                   row_group_rows: int | None = None) -> Snapshot:
    """Write ``frame`` as the use case's snapshot; identical data gives identical bytes.
    ``row_group_rows``: parquet row groups of at most this many rows (``common.snapshot_row_group_rows``),
    the unit a stream reads (``data.stream``); None keeps pyarrow's default."""
    folder = snapshot_dir / use_case
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SNAPSHOT_FILE
    tmp = folder / f".{SNAPSHOT_FILE}.tmp"
    frame.to_parquet(tmp, index=False, compression="snappy",
                     **({"row_group_size": row_group_rows} if row_group_rows else {}))
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
