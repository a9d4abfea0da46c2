"""Shared fixtures: real data slices and a throw-away funnel repository (git + DVC)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flows.runtime import configure_environment

configure_environment()

ROOT = Path(__file__).resolve().parents[1]
INTENT_CSV = ROOT / "data" / "intent" / "online_shoppers_intention.csv"
SENTIMENT_DIR = ROOT / "data" / "sentiment"
# Tests train for a few epochs on small real slices: quality numbers belong to the benchmark.
FAST = {
    "use_cases.intent.train.max_epochs": 8,
    "use_cases.sentiment.train.max_epochs": 4,
}


def intent_slice(rows: int = 2500, seed: int = 7) -> pd.DataFrame:
    """A stratified slice of the real online-shoppers data."""
    frame = pd.read_csv(INTENT_CSV)
    share = rows / len(frame)
    return frame.groupby("Revenue", group_keys=False).sample(frac=share, random_state=seed).sort_index()


def make_project(folder: Path, intent_rows: int = 2500) -> Path:
    """A funnel repository in ``folder``: code and params copied, real data slices, git + DVC."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("params.yaml", "dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "components", folder / "components", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "data" / "intent").mkdir(parents=True)
    intent_slice(intent_rows).to_csv(folder / "data" / "intent" / INTENT_CSV.name, index=False)
    shutil.copytree(SENTIMENT_DIR, folder / "data" / "sentiment")
    run = {"cwd": folder, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], **run)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], **run)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], **run)
    return folder


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh funnel repository per test, with the embedded MLflow and DVC defaults inside it."""
    root = make_project(tmp_path / "repo")
    monkeypatch.setenv("FUNNEL_REPO_ROOT", str(root))
    monkeypatch.setenv("FUNNEL_DVC_REMOTE", str(tmp_path / "remote"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(root)
    return root
