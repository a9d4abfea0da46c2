"""The ASGI layer of serving: the predict endpoint, the other routes, and uvicorn to run them.

Serve ``@champion`` models as an HTTP JSON API: validated input, compiled micro-batched scoring,
hot reload when the alias moves, health, readiness, Prometheus metrics and an OpenAPI spec.

Request: ``POST /predict/<use_case>`` with ``{"rows": [{<column>: <value>, ...}, ...]}``, one key
per input of the model signature (for a model trained with ``data.transforms``: per raw column the
transforms read, then the fitted transforms derive the model's inputs); an input the model declares
optional may be left out (or null), and a model's own value checks (e.g. one click time per item)
refuse a row with a 422 naming the row and field. Answer: ``{"use_case",
"model_version", "predictions": [...]}``. Input errors, rows the transforms refuse included, are
4xx JSON answers that say what is wrong; they never reach the model.

With API keys (``FUNNEL_SERVE_API_KEY``, read by ``funnel serve``), ``/predict`` and
``/openapi.json`` need one in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the probes
``/health``, ``/ready`` and ``/metrics`` (counts and versions, never rows) stay open.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from components.config import Settings
from components.serving.metrics import ServingMetrics
from components.serving.openapi import build_openapi
from components.serving.schema import RequestError, ServingError, check_rows, parse_rows
from components.serving.store import ModelStore, ServeParams

logger = logging.getLogger(__name__)

API_KEY_ENV = "FUNNEL_SERVE_API_KEY"
ASK_FOR_KEY = "send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
# sent with every 401: the scheme a client should use
CHALLENGE = {"www-authenticate": 'Bearer realm="funnel"'}


def parse_api_keys(value: str | None) -> tuple[bytes, ...]:
    """The keys in ``FUNNEL_SERVE_API_KEY`` (comma-separated, so a new key can go in before the old
    one leaves); () when unset: no auth. ServingError when it is set but holds no key."""
    if value is None:
        return ()
    keys = tuple(key.strip().encode() for key in value.split(",") if key.strip())
    if not keys:
        raise ServingError(f"{API_KEY_ENV} is set but holds no key; unset it (no auth) or give key[,key...]")
    return keys


def describe_auth(api_keys: tuple[bytes, ...]) -> str:
    """The line ``funnel serve`` prints about auth: on (how many keys, never a key) or off."""
    if not api_keys:
        return f"auth off: /predict and /openapi.json take requests without a key (set {API_KEY_ENV} to require one)"
    return (f"auth on: /predict and /openapi.json need one of the {len(api_keys)} key(s) in {API_KEY_ENV} "
            f"({ASK_FOR_KEY}); /health, /ready and /metrics stay open")


def check_api_key(headers: list[tuple[bytes, bytes]], keys: tuple[bytes, ...]) -> None:
    """Pass when ``headers`` (ASGI: lower-case names) carry one of ``keys``; RequestError 401 if not.

    Every key is compared in constant time; a wrong key is never echoed."""
    sent = []
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                sent.append(token.strip())
        elif name == b"x-api-key":
            sent.append(value.strip())
    if not sent:
        raise RequestError(401, f"this endpoint needs an API key: {ASK_FOR_KEY}")
    matched = False
    for token in sent:
        for key in keys:
            matched |= hmac.compare_digest(token, key)
    if not matched:
        raise RequestError(401, f"the API key sent is not valid here; {ASK_FOR_KEY} with a current key")


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None):
    import orjson
    from starlette.responses import Response

    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json", headers=headers)


async def read_body(headers: list[tuple[bytes, bytes]], receive, limit: int) -> bytes:
    """The ASGI request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = next((value for name, value in headers if name == b"content-length"), b"")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body is {int(declared)} bytes; the limit is {limit}, send fewer rows per request")
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is larger than {limit} bytes; send fewer rows per request")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


class PredictEndpoint:
    """``POST /predict/<use_case>`` as a bare ASGI handler: the hot path skips the framework."""

    def __init__(self, store: ModelStore, api_keys: tuple[bytes, ...] = ()) -> None:
        import orjson

        self.store = store
        self.api_keys = api_keys
        self._loads, self._dumps, self._decode_error = orjson.loads, orjson.dumps, orjson.JSONDecodeError
        self._dump_options = orjson.OPT_SERIALIZE_NUMPY
        self._counters: dict[tuple[str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    async def __call__(self, scope, receive, send) -> None:
        started = time.perf_counter()
        use_case = scope["path"][len("/predict/"):]
        label = use_case if use_case in self.store.use_cases else "unknown"
        try:
            status, answer, version = await self.answer(use_case, scope["headers"], receive)
        except RequestError as exc:
            status, answer, version = exc.status, exc.as_json(), None
        except Exception as exc:  # a bug or a broken model, never the client's input: logged, JSON 500
            logger.exception("scoring %s failed", use_case)
            status, answer, version = 500, {"error": f"internal error: {type(exc).__name__}; see the server log"}, None
        body = self._dumps(answer, option=self._dump_options)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if version is not None:
            headers.append((b"x-model-version", version.encode()))
        if status == 401:
            headers += [(name.encode(), value.encode()) for name, value in CHALLENGE.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self._observe(label, status, time.perf_counter() - started)

    async def answer(self, use_case: str, headers, receive) -> tuple[int, dict[str, Any], str | None]:
        store = self.store
        if self.api_keys:
            check_api_key(headers, self.api_keys)
        model = store.get(use_case)
        if model is None:
            if use_case in store.use_cases:
                return 503, {"error": f"{use_case} has no model loaded yet; see /ready"}, None
            raise RequestError(404, f"unknown use case {use_case!r}; this server serves {store.use_cases}")
        body = await read_body(headers, receive, store.params.max_body_bytes)
        try:
            payload = self._loads(body)
        except self._decode_error as exc:
            raise RequestError(400, f"the body is not valid JSON: {exc}") from None
        packed, rows = parse_rows(model.fields, payload, store.params.max_rows, store.params.max_string_chars)
        check_rows(model.fields, packed, model.checks)
        outputs = await model.batcher.submit(packed, rows)
        answer: dict[str, Any] = {
            "use_case": use_case, "model_version": model.version,
            "predictions": model.to_predictions(outputs),
        }
        if model.threshold is not None:
            answer["decision_threshold"] = model.threshold
        return 200, answer, model.version

    def _observe(self, label: str, status: int, seconds: float) -> None:
        # labelled children are looked up once: labels() costs more than the increment
        counter = self._counters.get((label, status))
        if counter is None:
            counter = self._counters[(label, status)] = self.store.metrics.requests.labels(label, str(status))
        timer = self._timers.get(label)
        if timer is None:
            timer = self._timers[label] = self.store.metrics.latency.labels(label)
        counter.inc()
        timer.observe(seconds)


def build_app(store: ModelStore, api_keys: tuple[bytes, ...] = ()):
    """The ASGI app: /predict/<use_case> (bare ASGI), /health, /ready, /metrics, /openapi.json (Starlette).

    With ``api_keys`` (see ``parse_api_keys``), /predict and /openapi.json need one of them."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import Response
    from starlette.routing import Route

    params, metrics = store.params, store.metrics
    predict = PredictEndpoint(store, api_keys)

    async def predict_route(request):  # never called: POST goes to ``predict``, other methods get a 405
        raise HTTPException(405)

    async def health(request):
        return json_response({"status": "ok"})

    async def ready(request):
        readiness = store.readiness()
        body = {"ready": readiness.ready, "versions": readiness.versions}
        return json_response(body | ({"reasons": readiness.reasons} if readiness.reasons else {}),
                             200 if readiness.ready else 503)

    async def metrics_endpoint(request):
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def openapi(request):
        if api_keys:
            try:
                check_api_key(request.scope["headers"], api_keys)
            except RequestError as exc:
                return json_response(exc.as_json(), exc.status, CHALLENGE)
        return json_response(build_openapi(store.served(), params, authenticated=bool(api_keys)))

    async def http_error(request, exc: HTTPException):
        message = {404: f"no such endpoint {request.url.path}; see /openapi.json",
                   405: f"{request.method} is not allowed on {request.url.path}; see /openapi.json"}
        return json_response({"error": message.get(exc.status_code, exc.detail)}, exc.status_code, exc.headers)

    async def server_error(request, exc: Exception):
        logger.exception("unexpected error on %s", request.url.path)
        return json_response({"error": f"internal error: {type(exc).__name__}; see the server log"}, 500)

    routes = [
        Route("/predict/{use_case:path}", predict_route, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    handlers = {HTTPException: http_error, Exception: server_error}
    # Starlette types every handler as taking any Exception; http_error is registered for HTTPException only
    framework = Starlette(routes=routes, exception_handlers=handlers)  # type: ignore[arg-type]

    async def app(scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/predict/"):
            await predict(scope, receive, send)
        else:
            await framework(scope, receive, send)

    return app


def open_store(settings: Settings, use_cases: list[str], params: ServeParams) -> ModelStore:
    """Load every use case's champion and start watching the alias (raises ServingError if one is missing)."""
    limit_tf_threads(params.tf_threads)
    store = ModelStore(settings, use_cases, params, ServingMetrics())
    try:
        store.load_all()
    except Exception:
        store.close()
        raise
    store.start_watching()
    return store


def limit_tf_threads(threads: int) -> None:
    """TensorFlow's intra- and inter-op threads for this process (0: leave TensorFlow's default).
    They can only be set before TensorFlow runs its first op: a process that already did (a test
    that trained a model, then serves it) keeps its threads, with a log line saying so."""
    if threads <= 0:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        logger.info("TensorFlow is already running in this process: common.serving.tf_threads not applied")


def server_config(app, host: str, port: int, **options: Any):
    """uvicorn settings for the serving app (``options``: e.g. ``workers`` with an app factory)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, loop="uvloop", http="httptools", lifespan="off",
                          access_log=False, log_level="warning", timeout_keep_alive=30,
                          proxy_headers=False, **options)


class BackgroundServer:
    """uvicorn on a thread (tests, benchmarks): ``with BackgroundServer(app, port): ...``."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.host, self.port = host, port or free_port(host)
        self.server = uvicorn.Server(server_config(app, self.host, self.port))
        self.thread = threading.Thread(target=self.server.run, name="funnel-serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ServingError(f"the server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
