"""Version data snapshots with DVC; the only module that calls DVC.

The snapshot of a use case is the output of its ``snapshot@<use_case>`` stage in dvc.yaml, so the
flow and ``dvc repro`` agree on one md5 in dvc.lock. DVC runs in this process (its ``Repo`` API,
as its command line does). DVC allows one command per repository at a time, so every call here
takes a per-repository file lock first.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.errors import VersioningError
from components.locks import DEFAULT_TIMEOUT_S, file_lock

logger = logging.getLogger(__name__)

REMOTE_NAME = "funnel"


@dataclass(frozen=True)
class DataVersion:
    """A snapshot as DVC knows it."""

    md5: str
    path: str
    stage: str
    is_new: bool
    remote: str


@contextmanager
def repo_lock(repo_root: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive lock on the repository's DVC state (across processes on this machine):
    DVC runs one command per repository at a time."""
    with file_lock(repo_root / ".dvc" / "tmp" / "funnel.lock", timeout_s, f"versioning data in {repo_root}"):
        yield


@contextmanager
def open_repo(repo_root: Path) -> Iterator[Any]:
    """DVC's own ``Repo`` for ``repo_root``, in this process: one import of DVC per process instead
    of a ``python -m dvc`` interpreter per command (2-4 s each, most of a retrain's versioning
    time). A DVC error becomes a VersioningError naming the repository and what DVC said.
    DVC resolves stage files and outputs against the working directory (its command line runs in
    the repository, or moves there with ``--cd``), so the process works in ``repo_root`` while the
    repo is open; call it under ``repo_lock``.
    """
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    reuse_parsed_yaml()
    # DVC's import gives its logger handlers that print INFO lines ("Updating lock file") on
    # stdout, where `funnel retrain --json` writes its document: warnings and errors only
    logging.getLogger("dvc").setLevel(logging.WARNING)
    previous = Path.cwd()
    os.chdir(repo_root)
    try:
        with Repo(str(repo_root)) as repo:
            yield repo
    except DvcException as exc:
        raise VersioningError(f"DVC failed in {repo_root}: {exc}{params_hint(str(exc))}") from None
    finally:
        os.chdir(previous)


# DVC parses the same YAML again and again in one command: dvc.lock (~110 KB, every use case's
# params) when it collects a stage, when it rewrites the lock and when it pushes; params.yaml for each
# params dependency and for dvc.yaml's ${use_cases}. Parsed once per content here (a copy each call).
PARSED_YAML: dict[str, Any] = {}
PARSED_YAML_ENTRIES = 8
PARSED_YAML_GUARD = threading.Lock()


def reuse_parsed_yaml() -> None:
    """Make DVC (in this process) parse each YAML text once: its safe parser is memoised by content
    (every caller gets its own copy), and it rewrites dvc.lock from that safe parse instead of its
    round-trip parser (ruamel's pure-Python one, which keeps comments and styles; ~0.8 s for this
    repository's lock on a loaded machine, twice per retrain). DVC alone writes dvc.lock (no
    comments), and its own dumper writes it, so the file is byte for byte what DVC writes
    (tests/components/data/test_versioning.py compares both). Idempotent; a DVC without these
    functions is left as it is."""
    try:
        import dvc.dvcfile
        import dvc.utils.serialize
        import dvc.utils.strictyaml
        from dvc.utils.serialize import _yaml
        from dvc.utils.serialize._common import _modify_data
    except ImportError:  # pragma: no cover - another DVC layout: its own parsing, unchanged
        return
    if getattr(_yaml.parse_yaml, "__wrapped__", None) is not None:
        return
    parse = _yaml.parse_yaml
    round_trip_modify = _yaml.modify_yaml

    def parse_yaml(text, path, typ="safe"):
        if typ != "safe":
            return parse(text, path, typ=typ)
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        with PARSED_YAML_GUARD:
            parsed = PARSED_YAML.get(key)
        if parsed is None:
            parsed = parse(text, path, typ=typ)
            with PARSED_YAML_GUARD:
                if len(PARSED_YAML) >= PARSED_YAML_ENTRIES:
                    PARSED_YAML.pop(next(iter(PARSED_YAML)))
                PARSED_YAML[key] = parsed
        return copy.deepcopy(parsed)

    @contextmanager
    def modify_yaml(path, fs=None):
        if not os.fspath(path).endswith(".lock"):  # dvc.yaml keeps its comments: DVC's round trip
            with round_trip_modify(path, fs=fs) as data:
                yield data
            return
        with _modify_data(path, parse_yaml, _yaml._dump, fs=fs) as data:
            yield data

    parse_yaml.__wrapped__ = parse  # type: ignore[attr-defined]
    for module in (_yaml, dvc.utils.serialize, dvc.utils.strictyaml):
        module.parse_yaml = parse_yaml
    dvc.dvcfile.modify_yaml = modify_yaml


def params_hint(message: str) -> str:
    """What to change in params.yaml when DVC could not read a stage's params: each stage in
    dvc.yaml lists its section's ``defaults.task.<task>`` and ``defaults.builder.<builder>``, so
    DVC needs ``task:`` written in the section and an entry for each under ``defaults``."""
    if "item.task" in message or "item.model.builder" in message:
        return ("; write `task:` (e.g. `task: binary`) and `model: {builder: ...}` in the use case's section of "
                "params.yaml: dvc.yaml's stages read them as written")
    if "defaults.task." in message or "defaults.builder." in message:
        return "; add an entry for that task kind or builder under `defaults:` in params.yaml (`{}` when nothing defaults)"
    return ""


def ensure_repo(repo_root: Path) -> None:
    """Fail with a clear message when ``repo_root`` is not a DVC repository."""
    if not (repo_root / ".dvc").is_dir():
        raise VersioningError(
            f"{repo_root} is not a DVC repository; run `dvc init` there (it needs git) and retry."
        )


def configure_remote(repo, url: str) -> None:
    """Make ``url`` the default remote of the open DVC ``repo``, in the untracked
    ``.dvc/config.local`` (as ``dvc remote add --local --force --default``); unchanged settings
    are not rewritten."""
    if "://" not in url:
        Path(url).mkdir(parents=True, exist_ok=True)
    local = repo.config.load_one("local")
    if local.get("remote", {}).get(REMOTE_NAME, {}).get("url") == url and local.get("core", {}).get("remote") == REMOTE_NAME:
        return
    with repo.config.edit("local") as conf:
        conf["remote"][REMOTE_NAME] = {"url": url}
        conf["core"]["remote"] = REMOTE_NAME


# libyaml's loader and dumper where PyYAML has them: dvc.lock holds every stage's params (~250 KB
# for a dozen use cases), which PyYAML's pure-Python loader takes seconds to read
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def read_lock(lock_file: Path) -> dict[str, Any]:
    """dvc.lock as plain data."""
    return yaml.load(lock_file.read_text(), Loader=SAFE_LOADER) or {}


def read_locked_md5(repo_root: Path, stage: str, path: str) -> str | None:
    """The md5 dvc.lock records for ``path`` as an output of ``stage`` (``name@key``)."""
    lock_file = repo_root / "dvc.lock"
    if not lock_file.is_file():
        return None
    lock = read_lock(lock_file)
    entry = lock.get("stages", {}).get(stage, {})
    for out in entry.get("outs", []):
        if out.get("path") == path:
            return out.get("md5")
    return None


def record_overrides(repo_root: Path, stage: str, overrides: Mapping[str, Any] | None) -> list[str]:
    """Write a run's ``--set`` overrides into the params dvc.lock records for ``stage``, so the
    lock says what the run used (``dvc status`` then shows the stage's params as changed against
    params.yaml). Only params the stage depends on are touched; returns the keys written."""
    if not overrides:
        return []
    lock_file = repo_root / "dvc.lock"
    lock = read_lock(lock_file) if lock_file.is_file() else None
    recorded = ((lock or {}).get("stages", {}).get(stage, {}).get("params") or {}).get("params.yaml")
    if not recorded:
        return []
    written = []
    for dotted, value in overrides.items():
        parsed = yaml.safe_load(value) if isinstance(value, str) else value
        if dotted in recorded:
            recorded[dotted] = parsed
            written.append(dotted)
            continue
        prefix = next((key for key in recorded if dotted.startswith(key + ".")), None)
        if prefix is None:
            continue
        node = recorded[prefix]
        *parents, leaf = dotted.removeprefix(prefix + ".").split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict):
            node[leaf] = parsed
            written.append(dotted)
    if written:
        lock_file.write_text(yaml.dump(lock, Dumper=SAFE_DUMPER, sort_keys=False, allow_unicode=True))
    return written


def version_snapshot(repo_root: Path, stage: str, snapshot_path: Path, remote_url: str,
                     overrides: Mapping[str, Any] | None = None, lock_timeout_s: float = DEFAULT_TIMEOUT_S,
                     staged: Path | None = None) -> DataVersion:
    """Record the snapshot written for ``stage`` in dvc.lock (with the run's overrides) and push
    it to the remote. ``staged``: the run's own file, copied onto ``snapshot_path`` under the lock,
    so a concurrent run of the same use case cannot swap the file between write and commit."""
    ensure_repo(repo_root)
    relative = snapshot_path.resolve().relative_to(repo_root.resolve()).as_posix()
    with repo_lock(repo_root, lock_timeout_s):
        if staged is not None:
            publish({staged: snapshot_path})
        before = read_locked_md5(repo_root, stage, relative)
        with open_repo(repo_root) as repo:
            configure_remote(repo, remote_url)
        with open_repo(repo_root) as repo:  # a fresh Repo reads the remote just configured
            repo.commit(stage, force=True)
            record_overrides(repo_root, stage, overrides)
            md5 = read_locked_md5(repo_root, stage, relative)
            if md5 is None:
                raise VersioningError(f"dvc.lock has no md5 for {relative} after committing {stage}")
            repo.push(targets=[stage], remote=REMOTE_NAME)
    logger.info("snapshot %s md5=%s (new=%s) pushed to %s", relative, md5, md5 != before, remote_url)
    return DataVersion(md5=md5, path=relative, stage=stage, is_new=md5 != before, remote=remote_url)


def commit_stage(repo_root: Path, stage: str, overrides: Mapping[str, Any] | None = None,
                 lock_timeout_s: float = DEFAULT_TIMEOUT_S, staged: Mapping[Path, Path] | None = None) -> None:
    """Record a stage's current outputs (metrics, plots) in dvc.lock, with the run's overrides;
    ``staged`` (the run's own files or folders -> the stage's outputs) are published first, under
    the same lock, so the outputs and the lock entry come from one run."""
    ensure_repo(repo_root)
    with repo_lock(repo_root, lock_timeout_s):
        publish(staged or {})
        with open_repo(repo_root) as repo:
            repo.commit(stage, force=True)
        record_overrides(repo_root, stage, overrides)


def publish(staged: Mapping[Path, Path]) -> None:
    """Copy each staged file or folder (a run's own) onto its destination, each swapped in whole
    (a folder replaces the old folder, so no file of an earlier run is left in it). Call under
    ``repo_lock``; the staged copies stay where they are (the run logs them to MLflow later)."""
    import shutil

    for source, destination in staged.items():
        destination.parent.mkdir(parents=True, exist_ok=True)
        incoming = destination.with_name(f".{destination.name}.incoming-{os.getpid()}")
        if source.is_dir():
            shutil.rmtree(incoming, ignore_errors=True)
            shutil.copytree(source, incoming)
            old = destination.with_name(f".{destination.name}.old-{os.getpid()}")
            if destination.exists():
                destination.replace(old)
            incoming.replace(destination)
            shutil.rmtree(old, ignore_errors=True)
        else:
            shutil.copyfile(source, incoming)
            incoming.replace(destination)


def cached_snapshot(repo_root: Path, md5: str, remote_url: str | None = None) -> Path | None:
    """The file DVC stored for ``md5``: the repo's cache, else a local-folder remote; None if neither."""
    if not md5 or len(md5) < 3:
        return None
    relative = Path("files") / "md5" / md5[:2] / md5[2:]
    candidates = [repo_root / ".dvc" / "cache" / relative]
    if remote_url and "://" not in remote_url:
        candidates.append(Path(remote_url) / relative)
    return next((path for path in candidates if path.is_file()), None)


def read_cached_snapshot(repo_root: Path, md5: str, remote_url: str | None = None):
    """The snapshot DVC stored for ``md5`` as a DataFrame: from the repo's cache, a local-folder
    remote, or any remote DVC reads (S3, GCS, Azure, ...: through DVC's own filesystem for that
    remote, with the repo's remote settings); None when none of them has it."""
    import pandas as pd

    path = cached_snapshot(repo_root, md5, remote_url)
    if path is not None:
        return pd.read_parquet(path)
    if not remote_url or "://" not in remote_url or not md5 or len(md5) < 3:
        return None
    return read_remote_snapshot(repo_root, md5, remote_url)


def read_remote_snapshot(repo_root: Path, md5: str, remote_url: str):
    """``files/md5/<2>/<rest>`` on the remote at ``remote_url`` (DVC 3's layout), or None."""
    import io

    import pandas as pd
    from dvc.fs import get_cloud_fs
    from dvc.repo import Repo

    try:
        with Repo(str(repo_root)) as repo:
            cls, config, root = get_cloud_fs(repo.config, url=remote_url)
        fs = cls(**config)
        path = fs.join(root, "files", "md5", md5[:2], md5[2:])
        if not fs.exists(path):
            return None
        with fs.open(path, "rb") as remote:
            return pd.read_parquet(io.BytesIO(remote.read()))
    except Exception as exc:  # credentials, network, a remote type without its plugin
        raise VersioningError(
            f"cannot read snapshot {md5} from the DVC remote {remote_url} ({type(exc).__name__}); check the "
            "remote's credentials (e.g. AWS_* for S3) and that its DVC plugin (e.g. dvc-s3) is installed"
        ) from None
