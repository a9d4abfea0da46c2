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


WORKER_ENVIRONMENT = """
from flows.runtime import configure_environment, dask_runner, worker_environment
configure_environment()
from prefect import get_client
env = worker_environment()
with get_client(sync_client=True) as client:
    assert client.api_healthcheck() is None
    print(env["PREFECT_API_URL"], str(client.api_url).rstrip("/"))
print(dask_runner(None, 2).cluster_kwargs["env"] == env)
"""


def test_dask_workers_are_given_the_temporary_prefect_server_this_process_runs(tmp_path):
    # without PREFECT_API_URL (make run) the process's own temporary server is started before the
    # cluster and handed to the workers, so that none starts one of its own (the session harness
    # sets PREFECT_API_URL, hence a fresh process with its own Prefect home)
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", WORKER_ENVIRONMENT], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    (handed, used), same = (line.split() for line in done.stdout.strip().splitlines()[-2:])
    assert handed.startswith("http://127.0.0.1:")
    assert handed == used
    assert same == ["True"]
