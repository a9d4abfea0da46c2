"""dvc.yaml mirrors the flow: `dvc repro` rebuilds the snapshot the flow versions, byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import load_params, load_settings
from components.data.ingest import read_source, write_snapshot
from components.data.versioning import version_snapshot

pytestmark = pytest.mark.integration


def test_dvc_repro_snapshot_matches_the_flow_md5(project, tmp_path):
    # given the md5 the flow's version step records for the sentiment snapshot
    settings = load_settings()
    params = load_params(settings.params_path)
    frame, source = read_source("sentiment", params.use_cases["sentiment"].data, settings)
    snapshot = write_snapshot("sentiment", frame, source, project / "data" / "snapshots")
    flow_md5 = version_snapshot(project, "snapshot@sentiment", snapshot.path, str(tmp_path / "remote")).md5
    snapshot.path.unlink()
    # when dvc repro rebuilds the stage from scratch with the funnel CLI
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-m", "dvc", "repro", "--force", "snapshot@sentiment"],
                   cwd=project, env=env, check=True, capture_output=True, text=True)
    # then the snapshot is back with the same md5 in dvc.lock
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["snapshot@sentiment"]["outs"][0]["md5"] == flow_md5
    assert snapshot.path.is_file()
