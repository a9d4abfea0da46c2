"""``funnel serve``: the online API for each use case's @champion (heavy imports stay inside)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

from flows.runtime import configure_environment

# the use cases and settings handed to worker processes (``--workers`` > 1); never the API keys:
# each worker reads them from the environment it inherits
SPEC_ENV = "FUNNEL_SERVE_SPEC"


def serve_command(
    use_cases: list[str],
    host: str = "127.0.0.1",
    port: int = 8080,
    poll_interval_s: float = 5.0,
    max_rows: int = 1000,
    max_batch_rows: int = 512,
    scoring_threads: int = 1,
    max_batch_wait_ms: float = 0.0,
    workers: int = 1,
) -> None:
    """Serve ``use_cases`` until interrupted; @champion moves are picked up every ``poll_interval_s``.

    The body and string limits and ``max_failed_reloads`` come from ``common.serving`` in params.yaml.
    With ``FUNNEL_SERVE_API_KEY`` set (key[,key...]), /predict and /openapi.json need one of the keys.

    With ``workers`` > 1, that many processes share the listening socket (uvicorn's supervisor
    restarts one that dies) and each new connection goes to the worker with the fewest open ones
    (``common.serving.accept_wait_ms``); each loads the champions, micro-batches and hot-reloads
    on its own, and /metrics adds up all of them.

    Raises UnknownUseCaseError for a name that is not registered and ServingError when a use case
    has no champion yet (train one with ``funnel retrain <use_case>``).
    """
    configure_environment()
    from components.config import load_params, load_settings
    from components.serving.app import API_KEY_ENV, describe_auth, parse_api_keys
    from components.serving.schema import ServingError
    from components.serving.store import ServeParams
    from components.use_cases import get_use_case

    if not use_cases:
        from components.errors import ConfigError

        raise ConfigError("give at least one use case to serve, e.g. `funnel serve intent`")
    if workers < 1:
        raise ServingError(f"--workers must be at least 1, got {workers}")
    settings = load_settings()
    loaded = load_params(settings.params_path)
    for name in use_cases:
        get_use_case(name, loaded)
    alias, serving = loaded.common.champion_alias, loaded.common.serving
    params = ServeParams(
        alias=alias, poll_interval_s=poll_interval_s, max_rows=max_rows, max_batch_rows=max_batch_rows,
        scoring_threads=scoring_threads, max_batch_wait_ms=max_batch_wait_ms,
        max_body_bytes=serving.max_body_bytes, max_string_chars=serving.max_string_chars,
        max_failed_reloads=serving.max_failed_reloads, tf_threads=serving.tf_threads,
    )
    api_keys = parse_api_keys(os.environ.get(API_KEY_ENV))  # refuses a set-but-empty variable before loading
    print(describe_auth(api_keys), flush=True)  # noqa: T201 - the command's output: whether clients need a key
    if workers > 1:
        _serve_workers(settings, use_cases, params, host, port, workers, serving.accept_wait_ms, serving.pin_workers)
        return
    import uvicorn

    from components.serving.app import build_app, open_store, server_config

    store = open_store(settings, use_cases, params)
    app = build_app(store, api_keys)
    print(  # noqa: T201 - the command's output: what it serves
        f"serving {', '.join(f'{uc} v{m.version}' for uc, m in store.served().items())} on http://{host}:{port} "
        f"(OpenAPI: /openapi.json, metrics: /metrics; @{alias} checked every {poll_interval_s:g} s)",
        flush=True,
    )
    try:
        uvicorn.Server(server_config(app, host, port)).run()
    finally:
        store.close()


def _serve_workers(settings, use_cases: list[str], params, host: str, port: int, workers: int,
                   accept_wait_ms: float, pin_workers: bool = False) -> None:
    """``workers`` uvicorn processes on one socket, each new connection taken by the least loaded
    worker (each on a core of its own with ``pin_workers``); Prometheus counts and the open
    connections per worker in a folder of this server."""
    from components.serving.app import server_config
    from components.serving.store import check_champions
    from components.serving.workers import serve_balanced

    versions = check_champions(settings, use_cases, params.alias)  # fail here, not in every worker
    folder = Path(tempfile.mkdtemp(prefix="funnel-serve-"))
    (folder / "metrics").mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder / "metrics")  # read by prometheus_client in each worker
    os.environ[SPEC_ENV] = json.dumps({"use_cases": use_cases, "params": dataclasses.asdict(params)})
    config = server_config(f"{__name__}:worker_app", host, port, factory=True, workers=workers)
    print(  # noqa: T201 - the command's output: what it serves
        f"serving {', '.join(f'{uc} v{v}' for uc, v in versions.items())} on http://{host}:{port} with {workers} "
        f"worker processes (OpenAPI: /openapi.json, metrics: /metrics; @{params.alias} checked every "
        f"{params.poll_interval_s:g} s)",
        flush=True,
    )
    try:
        serve_balanced(config, folder, accept_wait_ms, pin_workers)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def worker_app():
    """The app of one worker process (uvicorn's factory): its own store of champions."""
    configure_environment()
    from components.config import load_settings
    from components.serving.app import API_KEY_ENV, build_app, open_store, parse_api_keys
    from components.serving.store import ServeParams

    spec = json.loads(os.environ[SPEC_ENV])
    store = open_store(load_settings(), spec["use_cases"], ServeParams(**spec["params"]))
    return build_app(store, parse_api_keys(os.environ.get(API_KEY_ENV)))
