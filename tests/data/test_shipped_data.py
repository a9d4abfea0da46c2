"""The GX suites against the real data shipped in data/."""

from __future__ import annotations

import pytest

from components.config import load_params, load_settings
from components.data.ingest import read_source
from components.data.validate import validate_frame
from tests.conftest import ROOT


@pytest.mark.parametrize("name", ["intent", "sentiment"])
def test_shipped_data_passes_its_suite(name, tmp_path):
    settings = load_settings(env={}, repo_root=ROOT)
    params = load_params(ROOT / "params.yaml")
    frame, _ = read_source(name, params.use_cases[name].data, settings)
    report = validate_frame(name, frame, params.use_cases[name].validate, tmp_path)
    assert report.success, report.failures
    assert report.statistics["evaluated"] > 10
    assert (tmp_path / name / "index.html").is_file()
