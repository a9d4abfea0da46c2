"""DVC versioning in a real temporary git + DVC repository."""

from __future__ import annotations

import pytest

from components.data.ingest import write_snapshot
from components.data.versioning import read_locked_md5, version_snapshot
from components.errors import VersioningError
from tests.conftest import ROOT, intent_slice, make_project


def test_identical_data_same_md5_changed_data_new_version(tmp_path):
    # given a funnel repository with a snapshot written
    root = make_project(tmp_path / "repo", intent_rows=600)
    remote = tmp_path / "remote"
    frame = intent_slice(600)
    snapshot = write_snapshot("intent", frame, "test", root / "data" / "snapshots")
    # when it is versioned twice without change
    first = version_snapshot(root, "snapshot@intent", snapshot.path, str(remote))
    again = version_snapshot(root, "snapshot@intent", write_snapshot("intent", frame, "test", root / "data" / "snapshots").path, str(remote))
    # then the md5 is the same and only the first was new
    assert first.is_new
    assert not again.is_new
    assert first.md5 == again.md5 == read_locked_md5(root, "snapshot@intent", "data/snapshots/intent/snapshot.parquet")
    assert (remote / "files" / "md5" / first.md5[:2] / first.md5[2:]).is_file()
    # when the data changes, a new md5 is recorded
    changed = write_snapshot("intent", frame.head(500), "test", root / "data" / "snapshots")
    third = version_snapshot(root, "snapshot@intent", changed.path, str(remote))
    assert third.is_new
    assert third.md5 != first.md5


def test_the_lock_funnel_writes_is_the_lock_dvc_writes(tmp_path):
    """funnel's DVC parses each YAML text once and rewrites dvc.lock from its safe parse; DVC's
    command line round-trips it: both must leave the same bytes, with every use case's entries."""
    import shutil
    import subprocess
    import sys

    # given a funnel repository holding this repository's dvc.lock (every use case, as DVC wrote it)
    root = make_project(tmp_path / "repo", intent_rows=600)
    shutil.copy(ROOT / "dvc.lock", root / "dvc.lock")
    snapshot = write_snapshot("intent", intent_slice(600), "test", root / "data" / "snapshots")
    # when funnel versions the snapshot (DVC in this process) ...
    version = version_snapshot(root, "snapshot@intent", snapshot.path, str(tmp_path / "remote"))
    ours = (root / "dvc.lock").read_text()
    # ... and DVC's own command line commits the same stage from the same lock
    shutil.copy(ROOT / "dvc.lock", root / "dvc.lock")
    subprocess.run([sys.executable, "-m", "dvc", "commit", "-f", "-q", "snapshot@intent"], cwd=root, check=True,
                   capture_output=True)
    # then both wrote the same bytes, and the entry is this snapshot's
    assert (root / "dvc.lock").read_text() == ours
    assert version.md5 in ours
    assert ours != (ROOT / "dvc.lock").read_text()


def test_dvc_parses_a_yaml_text_once_and_each_caller_gets_its_own_copy():
    import hashlib

    from dvc.utils.serialize import _yaml

    from components.data.versioning import PARSED_YAML, reuse_parsed_yaml

    reuse_parsed_yaml()
    text = (ROOT / "params.yaml").read_text()
    first = _yaml.parse_yaml(text, "params.yaml")
    first["common"]["seed"] = "changed by a caller"
    again = _yaml.parse_yaml(text, "params.yaml")
    assert again["common"]["seed"] != "changed by a caller"
    assert again == _yaml.parse_yaml.__wrapped__(text, "params.yaml")
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() in PARSED_YAML  # kept: the next caller reads no YAML
    assert len(PARSED_YAML) <= 8
    # the round-trip parser (comments kept, for dvc.yaml) is DVC's own
    assert _yaml.parse_yaml("a: 1 # why\n", "x.yaml", typ="rt").ca.items


def test_not_a_dvc_repo_is_a_clear_error(tmp_path):
    snapshot = write_snapshot("intent", intent_slice(50), "test", tmp_path / "snapshots")
    with pytest.raises(VersioningError, match="not a DVC repository"):
        version_snapshot(tmp_path, "snapshot@intent", snapshot.path, str(tmp_path / "remote"))


def test_a_section_without_task_or_defaults_entry_names_the_params_fix(tmp_path):
    # given a funnel repository whose intent section leaves `task:` to the default
    root = make_project(tmp_path / "repo", intent_rows=600)
    params = root / "params.yaml"
    text = params.read_text()
    params.write_text(text.replace("  intent:\n    task: binary\n", "  intent:\n", 1))
    snapshot = write_snapshot("intent", intent_slice(600), "test", root / "data" / "snapshots")
    # when its snapshot is versioned, then the error says what to write in params.yaml
    with pytest.raises(VersioningError, match="write `task:`"):
        version_snapshot(root, "snapshot@intent", snapshot.path, str(tmp_path / "remote"))
    # and a task kind without an entry under defaults names the entry to add
    params.write_text(text.replace("  intent:\n    task: binary\n", "  intent:\n    task: mystery\n", 1))
    with pytest.raises(VersioningError, match="add an entry for that task kind or builder"):
        version_snapshot(root, "snapshot@intent", snapshot.path, str(tmp_path / "remote"))


def test_a_runs_overrides_are_what_dvc_lock_records(tmp_path):
    import yaml

    from components.data.versioning import record_overrides

    lock = {"schema": "2.0", "stages": {"snapshot@shop": {"cmd": "funnel stage snapshot shop", "params": {"params.yaml": {
        "use_cases.shop.data": {"source": "data/shop.csv", "format": "csv"},
        "use_cases.shop.validate": {"min_rows": 500}}}}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    written = record_overrides(tmp_path, "snapshot@shop", {
        "use_cases.shop.data.source": "/elsewhere/other.csv",   # the file this run read
        "use_cases.shop.data.delimiter": ";",                    # a key params.yaml leaves out
        "use_cases.shop.train.max_epochs": "3",                  # not a param of this stage
    })
    assert written == ["use_cases.shop.data.source", "use_cases.shop.data.delimiter"]
    recorded = yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]["snapshot@shop"]["params"]["params.yaml"]
    assert recorded["use_cases.shop.data"] == {"source": "/elsewhere/other.csv", "format": "csv", "delimiter": ";"}
    assert recorded["use_cases.shop.validate"] == {"min_rows": 500}
    assert record_overrides(tmp_path, "snapshot@shop", None) == []
    assert record_overrides(tmp_path, "train@other", {"use_cases.shop.data.source": "x"}) == []


def _version_own_snapshot(root: str, remote: str, rows: int, barrier, results) -> None:
    """One run: its snapshot staged in its own folder, versioned (published + committed) under the lock."""
    import hashlib
    from pathlib import Path

    scratch = Path(root) / "reports" / ".runs" / f"run-{rows}"
    staged = write_snapshot("intent", intent_slice(rows), "test", scratch)
    own = hashlib.md5(staged.path.read_bytes()).hexdigest()
    barrier.wait()
    version = version_snapshot(Path(root), "snapshot@intent", Path(root) / "data" / "snapshots" / "intent" / "snapshot.parquet",
                               remote, staged=staged.path)
    results.put((rows, own, version.md5))


def test_concurrent_runs_of_one_use_case_each_version_the_data_they_wrote(tmp_path):
    """Two runs of one use case at once: each stages its snapshot in its own folder and publishes it
    under the DVC lock, so the md5 each records is the md5 of its own data (never the other's)."""
    import multiprocessing

    from components.data.versioning import read_cached_snapshot

    root = make_project(tmp_path / "repo", intent_rows=600)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    runs = [context.Process(target=_version_own_snapshot, args=(str(root), str(tmp_path / "remote"), rows, barrier, results))
            for rows in (500, 600)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=300)
    outcome = [results.get(timeout=5) for _ in runs]
    assert len(outcome) == 2
    for rows, own, recorded in outcome:
        assert recorded == own, f"the run with {rows} rows recorded another run's data"
        assert len(read_cached_snapshot(root, recorded, str(tmp_path / "remote"))) == rows
    assert outcome[0][2] != outcome[1][2]
