"""``funnel serve``: the online API for each use case's @champion (heavy imports stay inside)."""

from __future__ import annotations

from flows.runtime import configure_environment


def serve_command(
    use_cases: list[str],
    host: str = "127.0.0.1",
    port: int = 8080,
    poll_interval_s: float = 5.0,
    max_rows: int = 1000,
    max_batch_rows: int = 512,
    scoring_threads: int = 1,
    max_batch_wait_ms: float = 0.0,
) -> None:
    """Serve ``use_cases`` until interrupted; @champion moves are picked up every ``poll_interval_s``.

    Raises UnknownUseCaseError for a name that is not registered and ServingError when a use case
    has no champion yet (train one with ``funnel retrain <use_case>``).
    """
    configure_environment()
    import uvicorn

    from components.config import load_params, load_settings
    from components.serving import ServeParams, build_app, open_store, server_config
    from components.use_cases import get_use_case

    if not use_cases:
        from components.errors import ConfigError

        raise ConfigError("give at least one use case to serve, e.g. `funnel serve intent`")
    for name in use_cases:
        get_use_case(name)
    settings = load_settings()
    alias = load_params(settings.params_path).common.champion_alias
    params = ServeParams(alias=alias, poll_interval_s=poll_interval_s, max_rows=max_rows, max_batch_rows=max_batch_rows,
                         scoring_threads=scoring_threads, max_batch_wait_ms=max_batch_wait_ms)
    store = open_store(settings, use_cases, params)
    print(  # noqa: T201 - the command's one line of output
        f"serving {', '.join(f'{uc} v{m.version}' for uc, m in store.served().items())} on http://{host}:{port} "
        f"(OpenAPI: /openapi.json, metrics: /metrics; @{alias} checked every {poll_interval_s:g} s)",
        flush=True,
    )
    try:
        uvicorn.Server(server_config(build_app(store), host, port)).run()
    finally:
        store.close()
