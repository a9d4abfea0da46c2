"""Process environment the engines need before they are imported (never done at import time)."""

from __future__ import annotations

import logging
import os
from typing import Any

DEFAULTS = {
    # no internet here: analytics calls would hang or fail
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "False",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_ENABLE_TELEMETRY": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # component loggers show up in the Prefect UI next to the flow's own
    "PREFECT_LOGGING_EXTRA_LOGGERS": "components",
    # ... and outside a flow run (funnel stage, tests) they go to the console only, without a warning
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # a 2-core machine under load starts the temporary server slowly
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "GIT_PYTHON_REFRESH": "quiet",
}


def configure_environment() -> None:
    """Set funnel's defaults for variables the user has not set."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    # funnel's own progress lines (epochs, data steps) are INFO; the root logger's WARNING would drop them
    component_logger = logging.getLogger("components")
    if component_logger.level == logging.NOTSET:
        component_logger.setLevel(logging.INFO)


def dask_runner(address: str | None, workers: int) -> Any:
    """A Prefect task runner on a Dask cluster: the scheduler at ``address``, or a LocalCluster of
    ``workers`` single-threaded worker processes (what ``--parallel`` runs use cases or trials on).
    Typed Any: prefect_dask subclasses the bare TaskRunner, which Prefect's invariant future type rejects."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "processes": True, "threads_per_worker": 1,
                                          "env": worker_environment()})


def worker_environment() -> dict[str, str]:
    """The environment a LocalCluster's worker processes get: the Prefect API this process reports
    to. Without a configured PREFECT_API_URL this process runs a temporary server; it is started
    here (Prefect keeps one per process, so the flow run uses the same) to hand its address on.
    Otherwise every worker process starts a temporary server of its own: about 20 s each before
    its first use case on 2 cores, and three servers writing one database for the whole run."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    url = PREFECT_API_URL.value()
    if not url and PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        server.start()
        url = server.api_url
    return {"PREFECT_API_URL": url} if url else {}
