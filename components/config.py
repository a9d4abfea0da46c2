"""Load params.yaml into frozen, validated pydantic objects, and the run-time settings from the environment."""

from __future__ import annotations

import os
import subprocess
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.errors import ConfigError
from components.overrides import load_yaml

T = TypeVar("T", bound=BaseModel)


class Section(BaseModel):
    """A params.yaml section: frozen, unknown keys refused, numbers given as YAML strings such as
    ``1.0e9`` (which YAML 1.1 reads as text) accepted where a number is expected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def describe_errors(error: ValidationError, where: str) -> str:
    """One line per problem: the key path, what was expected and what was given (config values,
    never data rows), with the allowed keys when a key is unknown."""
    lines = []
    for problem in error.errors():
        path = ".".join([where, *(str(part) for part in problem["loc"])])
        kind = problem["type"]
        if kind == "extra_forbidden":
            lines.append(f"{path}: unknown key; check the spelling in params.yaml")
        elif kind == "missing":
            lines.append(f"{path}: missing required key")
        else:
            lines.append(f"{path}: {problem['msg'].lower()}, got {problem.get('input')!r}")
    return "\n".join(lines)


def parse_section(cls: type[T], raw: Any, where: str) -> T:
    """Validate ``raw`` as the section model ``cls``; a ConfigError names every bad key path."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    try:
        return cls.model_validate(dict(raw))
    except ValidationError as exc:
        unknown = sorted(str(p["loc"][-1]) for p in exc.errors() if p["type"] == "extra_forbidden" and len(p["loc"]) == 1)
        allowed = f"\nallowed keys of {where}: {sorted(cls.model_fields)}" if unknown else ""
        raise ConfigError(f"{where}: invalid section\n{describe_errors(exc, where)}{allowed}") from None


class FitSection(Section):
    """What every Keras training section shares: batches, epochs and early stopping."""

    batch_size: int
    max_epochs: int
    early_stopping_patience: int
    validation_fraction: float
    # the validation quantity early stopping watches (val_loss, or a compiled metric such as val_auc)
    early_stopping_monitor: str = "val_loss"
    # learning rate x this factor after each epoch without improvement (0: off)
    reduce_lr_factor: float = 0.0


class ServingParams(Section):
    """`funnel serve`: how often @champion is checked, request and micro-batch limits."""

    poll_interval_s: float = 5.0
    max_rows: int = 1000
    max_batch_rows: int = 512
    max_batch_wait_ms: float = 0.0
    scoring_threads: int = 1
    workers: int = 1
    accept_wait_ms: float = Field(default=20.0, ge=0)  # the longest a new connection waits for a less busy worker
    max_body_bytes: int = 1_048_576  # a request body over this is refused with 413 before it is parsed
    max_string_chars: int = 10_000  # a longer string value in any field gets 422 before the model runs
    max_failed_reloads: int = 3  # /ready answers 503 once this many reloads of a new @champion in a row fail
    tf_threads: int = 0  # TensorFlow intra-/inter-op threads per worker process (0: TensorFlow's default)
    pin_workers: bool = False  # with workers > 1: each worker process runs on one core of its own


class CommonParams(Section):
    seed: int
    snapshot_dir: str
    reports_dir: str
    data_docs_dir: str
    dvc_remote_dir: str
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    # resamples of the test split for the confidence intervals in model cards and reviews
    bootstrap_rounds: int = 200
    batch_chunk_rows: int = 10000
    snapshot_row_group_rows: int = 65536  # parquet row groups of a snapshot (what a stream reads at a time)
    # the example logged with each MLflow model: synthetic (from the validation rules, never real rows) or off
    input_example: Literal["synthetic", "off"] = "synthetic"
    # tf.distribute strategy for training: default (none), mirrored (local devices), multi_worker
    distribute_strategy: Literal["default", "mirrored", "multi_worker"] = "default"
    # how long a run waits for a lock another run holds (an alias move, a DVC command) before
    # it stops with a message naming the lock
    lock_timeout_s: float = 300.0
    serving: ServingParams = ServingParams()


class ReplayParams(Section):
    """Release a data set in time order, as a live feed would: at date ``as_of`` a run sees the
    first ``1 + (as_of - start_date) // period_days`` periods (at least one, at most all).

    Periods are the values of ``column`` in ``order`` (e.g. months), or, without ``order``,
    ``periods`` equal-sized slices of a numeric timestamp column."""

    enabled: bool
    column: str
    start_date: str
    period_days: int
    order: tuple[Any, ...] | None = None
    periods: int | None = None


class ScheduleParams(Section):
    """When the retraining deployment of a use case runs (a cron line in ``timezone``)."""

    cron: str
    timezone: str = "UTC"
    active: bool = True
    # runs of this deployment at a time; more (cron + drift + backfill) wait in Prefect's queue
    # (AwaitingConcurrencySlot) instead of racing on the same snapshot and reports
    max_running: int = Field(default=1, ge=1)


class DataParams(Section):
    """Where a use case's data comes from.

    ``source`` is a repo path or a local path (or, for a one-file download, a URL). Data that may
    not be committed names the official ``url`` and a ``mirror_subdir`` of FUNNEL_DATA_MIRROR;
    either is copied into ``source`` (git-ignored), so DVC always tracks a local folder.
    """

    source: str
    # the file format, one of READERS in components/data/readers.py
    format: str = "csv"
    url: str | None = None
    delimiter: str = ","
    sha256: str | None = None
    mirror_subdir: str | None = None
    # header-less delimited / libFM files: every column name in file order (label included)
    columns: tuple[str, ...] | None = None
    # pandas dtypes per column for delimited files (e.g. ``string`` for hashed Criteo categories)
    dtypes: dict[str, str] | None = None
    replay: ReplayParams | None = None
    # the files a folder, mirror or archive source must hold: file name -> sha256 (checked on read)
    files: dict[str, str] | None = None
    # derived columns, applied in order after reading and again to raw rows at serving time
    # (each a mapping with an ``op``; typed by components/data/transforms.py)
    transforms: tuple[dict[str, Any], ...] = ()


class ColumnRule(Section):
    # the column's type family (components/data/validate.py TYPE_LISTS)
    type: Literal["int", "float", "str", "bool"]
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    min_length: int | None = None
    max_length: int | None = None
    # overrides the use case's max_null_fraction for this column (e.g. sparse ad-log fields)
    max_null_fraction: float | None = None


class ValidateParams(Section):
    # the column a binary or multiclass model learns (a ranking task has none)
    label: str | None = None
    min_rows: int
    max_null_fraction: float
    min_label_fraction: float
    columns: dict[str, ColumnRule]
    # columns whose combination must be unique (e.g. one rating per user and item)
    unique_together: tuple[str, ...] = ()


class SplitParams(Section):
    """How rows are assigned to train / validation / test (sizes: evaluate.test_fraction, train.validation_fraction).

    ``hash`` (default): a row's side is a function of its key — ``key_columns`` (e.g. a user id:
    all of a user's rows on one side, a split by group), else the whole row — so rows never change
    sides as data grows. ``stratified``: the same row hash, ranked within each label value, so every
    side holds each class in the data's proportions. ``time``: the newest rows by ``time_column`` are the test split (train on the past).
    ``official``: the data set's own ``column`` marks its test rows (validation by key). ``session_time``:
    a ``column`` group (a session) takes the side of its last time (test / validation periods in s)."""

    method: Literal["hash", "stratified", "time", "official", "session_time"] = "hash"
    key_columns: tuple[str, ...] = ()
    time_column: str | None = None
    column: str = "split"
    test_period_s: float = 86400.0
    validation_period_s: float = 86400.0
    seed: int | None = None  # of the assignment (default common.seed); fixed, the split stays as training seeds vary


class GateParams(Section):
    primary_metric: str
    min_delta: float
    floors: dict[str, float]
    # per-slice floors (metric -> value), checked on every slice with at least min_slice_rows rows
    slice_floors: dict[str, float] = Field(default_factory=dict)
    min_slice_rows: int = 50
    # auto: the gate decides; review: a passing challenger waits for a reviewer's approval
    promotion_mode: Literal["auto", "review"] = "auto"
    review_timeout_s: int = 86400
    review_poll_s: int = 10
    # paired: the lower bound of the 95% bootstrap interval of (challenger - champion) on the
    # primary metric must exceed min_delta; point: the challenger's value must (the old rule)
    compare: Literal["paired", "point"] = "paired"
    # model vs its same-run peer on the primary metric (paired interval of model - baseline):
    # non_inferior: lower bound > -baseline_margin; superior: lower bound > 0; advisory: reported only
    baseline_policy: Literal["non_inferior", "superior", "advisory"] = "non_inferior"
    baseline_margin: float = 0.01
    # no gated slice may fall more than this below the champion's value on it
    max_slice_drop: float = 0.05
    # fewer test rows than this that the champion never trained on: no comparison, a review decides
    min_compare_rows: int = 100
    # the champion cannot score the new data (its input columns are gone): review — a reviewer
    # approves with the floors and the baseline check in front of them; floors — promote on the
    # floors and the baseline check alone
    on_schema_change: Literal["review", "floors"] = "review"


class MonitorParams(Section):
    """Drift monitoring: when the newest data has shifted enough to retrain, and how often at most."""

    feature_psi_threshold: float = 0.25
    label_psi_threshold: float = 0.1
    score_psi_threshold: float = 0.25
    min_hours_between_retrains: float = 24.0


class ModelParams(Section):
    """Which registered code a use case runs: its model builder and same-run baseline
    (components/use_cases.py lists both)."""

    builder: str
    baseline: str
    # balanced: each class weighs rows / (classes x class rows) in the loss (rare positives)
    class_weight: Literal["none", "balanced"] = "none"


class CardParams(Section):
    """What the model card and the release review say about the use case and its data."""

    title: str
    intended_use: str = ""
    limitations: str = ""
    licence: str = "not stated: set card.licence in params.yaml"
    citation: str = ""
    # reference results (metric -> value) and where they come from, shown next to ours
    published: dict[str, float] = Field(default_factory=dict)
    published_source: str = ""
    # the shop's words for rows and for the class worth finding (e.g. sessions, purchases)
    business_terms: dict[str, str] = Field(default_factory=dict)
    # binary tasks: the label value worth finding (the positive class; default 1 / true)
    class_of_interest: str | int | bool | None = None


# The params.yaml key is ``validate``: the field shadows pydantic's deprecated ``BaseModel.validate``
# classmethod on purpose (instances read the field), so that one warning is silenced here only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)

    class UseCaseParams(Section):
        """One use case's section; ``features``, ``train`` and ``evaluate`` are typed by its use case
        (its builder and task kind) when it is configured (``components.use_cases``)."""

        # the kind of task (components/tasks) and the registered builder and baseline
        task: str  # required: dvc.yaml's stages read defaults.task.<task> from params.yaml as written
        model: ModelParams
        card: CardParams
        data: DataParams
        validate: ValidateParams  # type: ignore[assignment]  # shadows BaseModel.validate on purpose (above)
        features: dict[str, Any] = Field(default_factory=dict)
        train: dict[str, Any] = Field(default_factory=dict)
        evaluate: dict[str, Any] = Field(default_factory=dict)
        split: SplitParams = SplitParams()
        gate: GateParams
        monitor: MonitorParams = MonitorParams()
        schedule: ScheduleParams = ScheduleParams(cron="0 3 * * 1")
        tune: dict[str, Any] = Field(default_factory=dict)  # `funnel tune`'s ranges and metric (training/tune.py)


class Params(Section):
    common: CommonParams
    # section defaults per task kind and per builder, merged under every use case (see merge_defaults)
    defaults: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    use_cases: dict[str, UseCaseParams]


def read_params_file(path: Path) -> dict[str, Any]:
    """Read params.yaml as plain data."""
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}. Run funnel from the repository root.")
    raw = load_yaml(path.read_text())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def load_params(path: Path, overrides: Mapping[str, Any] | None = None) -> Params:
    """Load and validate params.yaml (with optional dotted overrides)."""
    from components.overrides import effective_params

    return parse_section(Params, effective_params(read_params_file(path), overrides), "params")


# ---------------------------------------------------------------------------------------------
# Settings: endpoints and folders, from the environment. Nothing here runs at import time.

MIRROR_ENV = "FUNNEL_DATA_MIRROR"
REMOTE_ENV = "FUNNEL_DVC_REMOTE"
ROOT_ENV = "FUNNEL_REPO_ROOT"
LOCK_ENV = "FUNNEL_LOCK_URL"
GIT_COMMIT_ENV = "FUNNEL_GIT_COMMIT"


@dataclass(frozen=True)
class Settings:
    """Where funnel reads and writes; defaults are the embedded one-machine set-up."""

    repo_root: Path
    tracking_uri: str
    artifact_location: str | None
    data_mirror: Path | None
    dvc_remote: str
    params_path: Path
    # where alias moves of a use case are serialised across machines (FUNNEL_LOCK_URL):
    # a postgresql:// URL all workers reach, or "file" (this machine only); None: derived from
    # the tracking URI (SQLite: a file lock beside it; PostgreSQL: an advisory lock in it)
    lock_url: str | None = None

    def path(self, relative: str) -> Path:
        return self.repo_root / relative


def find_repo_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` that holds params.yaml and dvc.yaml."""
    for folder in (start, *start.parents):
        if (folder / "params.yaml").is_file() and (folder / "dvc.yaml").is_file():
            return folder
    raise ConfigError(
        f"no funnel repository (params.yaml + dvc.yaml) at or above {start}; "
        f"cd into the repository or set {ROOT_ENV}."
    )


def load_settings(
    env: Mapping[str, str] | None = None, repo_root: Path | None = None
) -> Settings:
    """Settings from the environment, falling back to the embedded defaults inside the repo."""
    env = os.environ if env is None else env
    root = repo_root or (Path(env[ROOT_ENV]) if env.get(ROOT_ENV) else find_repo_root(Path.cwd()))
    root = root.resolve()
    params_path = root / "params.yaml"
    common = parse_section(
        CommonParams, read_params_file(params_path).get("common", {}), "params.common"
    )
    tracking_uri = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlruns.db'}"
    embedded = not env.get("MLFLOW_TRACKING_URI")
    artifact_location = (root / "mlartifacts").as_uri() if embedded else None
    mirror = Path(env[MIRROR_ENV]).expanduser().resolve() if env.get(MIRROR_ENV) else None
    remote = env.get(REMOTE_ENV) or str(root / common.dvc_remote_dir)
    return Settings(
        repo_root=root,
        tracking_uri=tracking_uri,
        artifact_location=artifact_location,
        data_mirror=mirror,
        dvc_remote=remote,
        params_path=params_path,
        lock_url=env.get(LOCK_ENV) or None,
    )


def read_git_commit(repo_root: Path, env: Mapping[str, str] | None = None) -> str:
    """The commit the code runs at: ``FUNNEL_GIT_COMMIT`` when set (a worker image records the
    source commit it was built from; its own repository is a local one made at build time), else
    the checkout's HEAD (with ``-dirty`` when the tree has changes), or ``unknown``."""
    pinned = (os.environ if env is None else env).get(GIT_COMMIT_ENV, "").strip()
    if pinned and pinned != "unknown":
        return pinned
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo_root, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha
