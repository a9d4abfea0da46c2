"""Habits that keep CI honest: a missing prerequisite fails under CI=true instead of skipping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = '''
from tests.conftest import needs_mirror

@needs_mirror
def test_reads_the_mirror():
    pass
'''


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 error"), ("", "1 skipped")])
def test_a_test_needing_the_mirror_fails_in_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    probe = ROOT / "tests" / f"test_probe_mirror_{ci or 'local'}.py"
    probe.write_text(PROBE)
    try:
        env = {"PATH": "/usr/bin:/bin", "CI": ci, "FUNNEL_DATA_MIRROR": str(tmp_path / "no-mirror"), "HOME": str(tmp_path)}
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
                                cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    finally:
        probe.unlink()
    assert outcome in result.stdout, result.stdout[-2000:]
