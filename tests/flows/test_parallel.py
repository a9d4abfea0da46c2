"""`retrain --all --parallel`: use cases fanned out on a Dask LocalCluster of worker processes."""

from __future__ import annotations

import pytest

from tests.conftest import FAST

pytestmark = pytest.mark.integration


def test_two_use_cases_train_in_parallel_on_two_dask_worker_processes(project):
    from components.config import load_settings
    from components.release.registry import get_alias_version
    from flows.retrain import with_dask

    results = with_dask(None, 2)(["intent", "fraud"], FAST, parallel=True)
    by_name = {r["use_case"]: r for r in results}
    assert {by_name["intent"]["status"], by_name["fraud"]["status"]} == {"promoted"}, results
    settings = load_settings()
    for name in ("intent", "fraud"):
        assert str(get_alias_version(settings, name, "champion").version) == "1"
    # both snapshots were committed to dvc.lock by concurrent processes without lock errors
    lock = (project / "dvc.lock").read_text()
    assert "snapshot@intent" in lock
    assert "snapshot@fraud" in lock
