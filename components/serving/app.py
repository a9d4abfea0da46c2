"""Serve ``@champion`` models as an HTTP JSON API: validated input, compiled micro-batched scoring,
hot reload when the alias moves, health, readiness, Prometheus metrics and an OpenAPI spec.

Request: ``POST /predict/<use_case>`` with ``{"rows": [{<column>: <value>, ...}, ...]}``, one key
per input of the model signature. Answer: ``{"use_case", "model_version", "predictions": [...]}``.
Input errors are 4xx JSON answers that say what is wrong; they never reach the model.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.config import Settings
from components.errors import FunnelError

logger = logging.getLogger(__name__)

FLOAT32_MAX = float(np.finfo(np.float32).max)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# JSON Schema type of each tensor dtype a funnel signature uses
JSON_TYPES = {"float32": "number", "int64": "integer", "int32": "integer", "string": "string"}
MAX_REPORTED_ERRORS = 20


class ServingError(FunnelError):
    """A model cannot be served (no champion, or a signature the server cannot read)."""


class RequestError(FunnelError):
    """A request the server refuses; ``status`` is the 4xx answer and ``details`` say why."""

    def __init__(self, status: int, message: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def as_json(self) -> dict[str, Any]:
        return {"error": self.message, **({"details": list(self.details)} if self.details else {})}


@dataclass(frozen=True)
class ServeParams:
    """How the server behaves; defaults suit one 2-core machine."""

    alias: str = "champion"
    poll_interval_s: float = 5.0
    max_rows: int = 1000
    max_body_bytes: int = 4 * 1024 * 1024
    # a micro-batch takes every queued request up to this many rows
    max_batch_rows: int = 512
    # a batch smaller than the recent concurrency waits this long for the rest (0: never waits)
    max_batch_wait_ms: float = 0.0
    scoring_threads: int = 1

    def __post_init__(self) -> None:
        if (self.poll_interval_s <= 0 or self.max_rows < 1 or self.max_batch_rows < 1 or self.scoring_threads < 1
                or self.max_batch_wait_ms < 0):
            raise ServingError(
                f"invalid serving settings {self}: poll_interval_s must be > 0, max_batch_wait_ms >= 0, "
                "max_rows, max_batch_rows and scoring_threads >= 1"
            )


# ---------------------------------------------------------------------------------------------
# Input fields and request validation (pure).

@dataclass(frozen=True)
class InputField:
    name: str
    dtype: str  # the tensor dtype fed to the model: float32 | int64 | int32 | string

    @property
    def json_type(self) -> str:
        return JSON_TYPES[self.dtype]


def read_fields(signature, spec: Mapping[str, str]) -> tuple[InputField, ...]:
    """The input fields of a model: names from its MLflow signature, dtypes from the Keras inputs.

    Raises ServingError when the signature and the model disagree or a dtype is not servable.
    """
    named = [s.name for s in signature.inputs.inputs] if signature is not None else []
    if sorted(named) != sorted(spec):
        raise ServingError(
            f"the model signature names {sorted(named)} but the Keras model takes {sorted(spec)}; "
            "re-register the model with `funnel retrain` so both agree"
        )
    unknown = {name: dtype for name, dtype in spec.items() if dtype not in JSON_TYPES}
    if unknown:
        raise ServingError(f"inputs {unknown} have dtypes the server cannot take (known: {sorted(JSON_TYPES)})")
    return tuple(InputField(name, dtype) for name, dtype in spec.items())


def group_fields(fields: tuple[InputField, ...]) -> dict[str, tuple[str, ...]]:
    """Input names grouped by dtype, in model order: one packed matrix per dtype goes to the model."""
    groups: dict[str, list[str]] = {}
    for f in fields:
        groups.setdefault(f.dtype, []).append(f.name)
    return {dtype: tuple(names) for dtype, names in groups.items()}


def _check_value(value: Any, json_type: str) -> str | None:
    """Why ``value`` does not fit ``json_type``, or None when it does."""
    kind = type(value)
    if json_type == "string":
        return None if kind is str else f"expected a string, got {_describe(value)}"
    if json_type == "integer":
        # 3.0 is an integer in JSON; past 2**53 a float is not exact (an out-of-range literal parses to one)
        if kind is float and value.is_integer() and abs(value) <= 2**53:
            value, kind = int(value), int
        if kind is not int:
            return f"expected an integer, got {_describe(value)}"
        return None if INT64_MIN <= value <= INT64_MAX else f"integer {value} is outside the int64 range"
    if kind is not int and kind is not float:
        return f"expected a number, got {_describe(value)}"
    return None if abs(value) <= FLOAT32_MAX else f"number {value} is outside the float32 range"


def _describe(value: Any) -> str:
    names = {bool: "a boolean", type(None): "null", str: "a string", list: "an array", dict: "an object",
             int: "an integer", float: "a number"}
    return names.get(type(value), type(value).__name__)


def parse_rows(fields: tuple[InputField, ...], payload: Any, max_rows: int) -> tuple[dict[str, np.ndarray], int]:
    """Validate ``{"rows": [...]}`` against the fields; return one (rows, k) matrix per dtype.

    Raises RequestError (422) listing every problem found (up to 20), with its row and field.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("rows"), list):
        raise RequestError(422, 'the body must be a JSON object {"rows": [{...}, ...]}')
    extra = sorted(set(payload) - {"rows"})
    rows = payload["rows"]
    if extra:
        raise RequestError(422, f"unknown top-level key(s) {extra}; the body takes only 'rows'")
    if not rows:
        raise RequestError(422, "'rows' is empty; send at least one row")
    if len(rows) > max_rows:
        raise RequestError(422, f"{len(rows)} rows in one request; the limit is {max_rows}, split the request")
    names = {f.name for f in fields}
    groups = group_fields(fields)
    types = [(f.name, f.json_type) for f in fields]
    columns: dict[str, list[list[Any]]] = {dtype: [] for dtype in groups}
    errors: list[str] = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            errors.append(f"rows[{index}]: expected an object of column values, got {_describe(row)}")
            continue
        if row.keys() != names:
            errors += _key_errors(index, row, names)
            continue
        for name, json_type in types:
            problem = _check_value(row[name], json_type)
            if problem:
                errors.append(f"rows[{index}].{name}: {problem}")
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
        if not errors:
            for dtype, group in groups.items():
                columns[dtype].append([row[name] for name in group])
    if errors:
        raise RequestError(422, "the rows do not match the model signature", tuple(errors[:MAX_REPORTED_ERRORS]))
    packed = {
        dtype: np.array(values, dtype=object if dtype == "string" else dtype).reshape(len(rows), len(groups[dtype]))
        for dtype, values in columns.items()
    }
    return packed, len(rows)


def _key_errors(index: int, row: dict, names: set[str]) -> list[str]:
    missing, unknown = sorted(names - row.keys()), sorted(row.keys() - names)
    out = [f"rows[{index}]: missing field(s) {missing}"] if missing else []
    return out + ([f"rows[{index}]: unknown field(s) {unknown}; the model takes {sorted(names)}"] if unknown else [])


def pack_frame(fields: tuple[InputField, ...], frame) -> dict[str, np.ndarray]:
    """Raw rows of a DataFrame as one (rows, k) matrix per dtype (the batch-scoring path)."""
    packed = {}
    for dtype, names in group_fields(fields).items():
        values = np.stack([np.asarray(frame[name]) for name in names], axis=1)
        packed[dtype] = values.astype(str).astype(object) if dtype == "string" else values.astype(dtype)
    return packed


# ---------------------------------------------------------------------------------------------
# The compiled path and micro-batching.

class CompiledScorer:
    """One traced concrete function over the Keras model, fed one matrix per dtype.

    Packing the inputs by dtype turns 17 tensor conversions per call (intent) into 3, and calling
    the concrete function skips tf.function's argument matching. Where this TensorFlow allows, the
    call also skips the concrete function's own argument binding (``_call_flat`` on tensors made
    directly): about 0.3 ms less per call on this machine. That fast path is checked against the
    public call on warm-up rows when the scorer is built, and not used if it differs or fails.
    """

    def __init__(self, keras_model, fields: tuple[InputField, ...]) -> None:
        import tensorflow as tf

        self.fields = fields
        self.groups = group_fields(fields)
        signature = {dtype: tf.TensorSpec((None, len(names)), dtype, name=dtype) for dtype, names in self.groups.items()}
        groups = self.groups

        def call(packed):
            inputs = {name: packed[dtype][:, i : i + 1] for dtype, names in groups.items() for i, name in enumerate(names)}
            return keras_model(inputs, training=False)

        self._function = tf.function(call, input_signature=[signature]).get_concrete_function()
        self._constant = tf.constant
        self._fast = self._fast_path(warm_up_rows(fields))

    def _public_call(self, packed: dict[str, np.ndarray]):
        return self._function({d: self._constant(a, dtype=d) for d, a in packed.items()})

    def _fast_path(self, sample: dict[str, np.ndarray]) -> Callable[[dict[str, np.ndarray]], Any] | None:
        """The flat call (private TensorFlow API), or None unless it matches the public call on ``sample``."""
        from components.models.scorer import as_numpy_outputs

        try:
            import tensorflow as tf
            from tensorflow.python.eager import context
            from tensorflow.python.framework import ops

            device = context.context().device_name
            # a dict signature flattens in key order
            order = [(dtype, tf.as_dtype(dtype).as_datatype_enum) for dtype in sorted(self.groups)]
            call_flat, captured, eager = self._function._call_flat, self._function.captured_inputs, ops.EagerTensor

            def fast(packed: dict[str, np.ndarray]):
                return call_flat([eager(packed[dtype], device, enum) for dtype, enum in order], captured)

            expected, got = as_numpy_outputs(self._public_call(sample)), as_numpy_outputs(fast(sample))
            same = expected.keys() == got.keys() and all(
                np.array_equal(expected[k], got[k]) for k in expected)
        except Exception as exc:  # noqa: BLE001 - any change in TF internals means: use the public call
            logger.info("compiled scorer: flat call unavailable (%s); using the public call", exc)
            return None
        return fast if same else None

    def __call__(self, packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from components.models.scorer import as_numpy_outputs

        return as_numpy_outputs(self._fast(packed) if self._fast is not None else self._public_call(packed))

    def score_packed(self, packed: dict[str, np.ndarray], batch_size: int = 8192) -> dict[str, np.ndarray]:
        """Score many rows in chunks (batch scoring)."""
        rows = len(next(iter(packed.values())))
        parts = [self({d: a[start : start + batch_size] for d, a in packed.items()}) for start in range(0, rows, batch_size)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]} if parts else {}


def concat_packed(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {dtype: np.concatenate([p[dtype] for p in parts]) for dtype in parts[0]}


class MicroBatcher:
    """Joins the requests queued while the model is busy into one call, scored on a worker thread.

    Lives on the event loop (no locks): the first request starts a drain task; requests that
    arrive while a batch is scoring wait in ``_pending`` and go together in the next call.

    With ``max_wait_ms`` > 0, a batch smaller than the recent concurrency (the most requests any
    of the last few batches held) waits up to that long for the others, as TF Serving's batch
    timeout does. Closed-loop clients then fall into step and every call carries all of them,
    while a lone client (batches of one) never waits.
    """

    RECENT_BATCHES = 8

    def __init__(self, score: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
                 executor: Executor, max_batch_rows: int, observe_batch: Callable[[int], None] = lambda n: None,
                 max_wait_ms: float = 0.0) -> None:
        self._score = score
        self._executor = executor
        self._max_batch_rows = max_batch_rows
        self._observe_batch = observe_batch
        self._max_wait_s = max_wait_ms / 1000
        self._pending: list[tuple[dict[str, np.ndarray], int, asyncio.Future]] = []
        self._draining = False
        self._recent: collections.deque[int] = collections.deque([1], maxlen=self.RECENT_BATCHES)
        self._arrival: asyncio.Future | None = None

    async def submit(self, packed: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((packed, rows, future))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        elif self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)
        return await future

    def _take(self) -> list[tuple[dict[str, np.ndarray], int, asyncio.Future]]:
        taken, total = [], 0
        while self._pending and (not taken or total + self._pending[0][1] <= self._max_batch_rows):
            item = self._pending.pop(0)
            taken.append(item)
            total += item[1]
        return taken

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait (at most ``max_wait_ms``) until as many requests are queued as recently came together."""
        expected = max(self._recent)
        if self._max_wait_s <= 0 or len(self._pending) >= expected:
            return
        deadline = loop.time() + self._max_wait_s
        while len(self._pending) < expected and sum(rows for _, rows, _ in self._pending) < self._max_batch_rows:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._arrival = arrival = loop.create_future()
            timer = loop.call_later(remaining, _resolve, arrival)
            try:
                await arrival
            finally:
                timer.cancel()
                self._arrival = None

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                await self._gather(loop)
                batch = self._take()
                self._recent.append(len(batch))
                self._observe_batch(sum(rows for _, rows, _ in batch))
                packed = concat_packed([p for p, _, _ in batch])
                try:
                    outputs = await loop.run_in_executor(self._executor, self._score, packed)
                except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for _, rows, future in batch:
                    if not future.done():
                        future.set_result({name: values[start : start + rows] for name, values in outputs.items()})
                    start += rows
        finally:
            self._draining = False


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


# ---------------------------------------------------------------------------------------------
# A served model version and the store that hot-reloads it.

@dataclass
class ServedModel:
    use_case: str
    version: str
    run_id: str
    fields: tuple[InputField, ...]
    output_names: dict[str, str]  # scorer output key -> name in the answer
    threshold: float | None
    scorer: CompiledScorer
    batcher: MicroBatcher
    loaded_at: float = field(default_factory=time.time)

    def to_predictions(self, outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """One JSON object per row: every output under its signature name."""
        columns = {}
        for key, values in outputs.items():
            if values.ndim == 2 and values.shape[1] == 1:
                values = values[:, 0]
            columns[self.output_names.get(key, key)] = values.tolist()
        names = list(columns)
        return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def output_names(signature, outputs: Mapping[str, np.ndarray]) -> dict[str, str]:
    """A single unnamed output takes the signature's output name (``probability``)."""
    if set(outputs) == {"output"} and signature is not None and signature.outputs is not None:
        names = signature.outputs.input_names()
        if len(names) == 1 and names[0]:
            return {"output": names[0]}
    return {name: name for name in outputs}


def warm_up_rows(fields: tuple[InputField, ...], rows: int = 2) -> dict[str, np.ndarray]:
    """Neutral rows (0, 0.0, "") in packed form: the first call traces nothing at request time."""
    example = {f.name: ("" if f.dtype == "string" else 0) for f in fields}
    packed, _ = parse_rows(fields, {"rows": [example] * rows}, rows)
    return packed


def load_served_model(settings: Settings, use_case: str, params: ServeParams, executor: Executor,
                      observe_batch: Callable[[int], None] = lambda n: None) -> ServedModel | None:
    """Load ``<use_case>@<alias>`` fully, compile and warm it up; None when the alias is unset.

    The registry resolves the alias once and loads that version by number, so a move during the
    load is simply picked up by the next poll.
    """
    from components.release import registry

    loaded = registry.load_scorer(settings, use_case, params.alias)
    if loaded is None:
        return None
    version, model, threshold = loaded
    run_id = model.metadata.run_id
    from components.models.scorer import input_spec

    keras_model = model.get_raw_model()  # funnel's pyfunc loader hands out the Keras model
    signature = model.metadata.signature
    return build_served_model(use_case, version, run_id, keras_model, read_fields(signature, input_spec(keras_model)),
                              signature, threshold, executor, params.max_batch_rows, observe_batch,
                              params.max_batch_wait_ms)


def build_served_model(use_case: str, version: str, run_id: str, keras_model, fields: tuple[InputField, ...],
                       signature, threshold: float, executor: Executor, max_batch_rows: int,
                       observe_batch: Callable[[int], None] = lambda n: None,
                       max_batch_wait_ms: float = 0.0) -> ServedModel:
    """Compile ``keras_model``, warm it up and give it a micro-batcher on ``executor``."""
    scorer = CompiledScorer(keras_model, fields)
    outputs = scorer(warm_up_rows(fields))
    batcher = MicroBatcher(scorer, executor, max_batch_rows, observe_batch, max_batch_wait_ms)
    return ServedModel(
        use_case=use_case, version=version, run_id=run_id, fields=fields,
        output_names=output_names(signature, outputs),
        threshold=threshold if set(outputs) == {"output"} and math.isfinite(threshold) else None,
        scorer=scorer, batcher=batcher,
    )


class ModelStore:
    """The served version of each use case; a watcher thread swaps in a new ``@champion``.

    A new version is loaded, compiled and warmed up before one reference swap, so requests never
    wait for a load and in-flight requests finish on the version that took them.
    """

    def __init__(self, settings: Settings, use_cases: list[str], params: ServeParams, metrics: ServingMetrics) -> None:
        self.settings = settings
        self.use_cases = list(dict.fromkeys(use_cases))
        self.params = params
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(params.scoring_threads, thread_name_prefix="funnel-score")
        self._models: dict[str, ServedModel] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def get(self, use_case: str) -> ServedModel | None:
        return self._models.get(use_case)

    def served(self) -> dict[str, ServedModel]:
        return dict(self._models)

    def load_all(self) -> None:
        """Load every use case's champion now; raises ServingError naming those without one."""
        missing = [uc for uc in self.use_cases if not self.refresh_one(uc, raise_errors=True)]
        if missing:
            raise no_champion_error(self.settings, missing, self.params.alias)

    def refresh_one(self, use_case: str, raise_errors: bool = False) -> bool:
        """Load the alias's version if it is not the one served; True when a model is being served."""
        from components.release import registry

        current = self._models.get(use_case)
        try:
            found = registry.get_alias_version(self.settings, use_case, self.params.alias)
            if found is None or (current is not None and str(found.version) == current.version):
                return current is not None
            started = time.perf_counter()
            model = load_served_model(self.settings, use_case, self.params, self.executor,
                                      self.metrics.batch_rows.labels(use_case).observe)
        except Exception as exc:
            self.metrics.reloads.labels(use_case, "failed").inc()
            logger.warning("could not load %s@%s (still serving %s): %s", use_case, self.params.alias,
                           f"v{current.version}" if current else "nothing", exc)
            if raise_errors:
                raise
            return current is not None
        if model is None:
            return current is not None
        self.put(model)
        logger.info("serving %s v%s (loaded in %.1f s, was %s)", use_case, model.version,
                    time.perf_counter() - started, f"v{current.version}" if current else "none")
        return True

    def put(self, model: ServedModel) -> None:
        """Serve ``model`` from the next request on (one reference swap: atomic for every reader)."""
        self._models[model.use_case] = model
        self.metrics.reloads.labels(model.use_case, "loaded").inc()
        self.metrics.version.labels(model.use_case).set(float(model.version))

    def refresh(self) -> None:
        for use_case in self.use_cases:
            self.refresh_one(use_case)

    def start_watching(self) -> None:
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="funnel-champion-watcher", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.params.poll_interval_s):
            self.refresh()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=60)
        self.executor.shutdown(wait=False, cancel_futures=True)


# ---------------------------------------------------------------------------------------------
# Metrics, OpenAPI, the ASGI app.

class ServingMetrics:
    """Prometheus metrics in their own registry (several servers may share one process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("funnel_serving_requests", "Predict requests by use case and HTTP status",
                                ["use_case", "status"], registry=self.registry)
        self.latency = Histogram(
            "funnel_serving_request_seconds", "Predict request time inside the server", ["use_case"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=self.registry)
        self.batch_rows = Histogram("funnel_serving_batch_rows", "Rows per model call (micro-batch size)",
                                    ["use_case"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
                                    registry=self.registry)
        # with several worker processes, one series per live worker (label ``pid``)
        self.version = Gauge("funnel_serving_model_version", "Model version being served", ["use_case"],
                             registry=self.registry, multiprocess_mode="liveall")
        self.reloads = Counter("funnel_serving_reloads", "Model loads by outcome (loaded, failed)",
                               ["use_case", "outcome"], registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        """This process's metrics, or every worker's added up when serving with several processes."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def field_schema(f: InputField) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": f.json_type}
    if f.json_type == "number":
        schema |= {"minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    elif f.json_type == "integer":
        schema |= {"format": "int64", "minimum": INT64_MIN, "maximum": INT64_MAX}
    return schema


def _json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def build_openapi(models: Mapping[str, ServedModel], params: ServeParams) -> dict[str, Any]:
    """OpenAPI 3.0 for the served models: one predict path per use case, rows typed by its signature."""
    error = {"$ref": "#/components/schemas/Error"}
    schemas: dict[str, Any] = {"Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string"}, "details": {"type": "array", "items": {"type": "string"}}},
    }}
    paths: dict[str, Any] = {
        "/health": {"get": {"operationId": "health", "summary": "Liveness: the process answers",
                            "responses": {"200": _json_content({"type": "object"}, "alive")}}},
        "/ready": {"get": {"operationId": "ready", "summary": "Readiness: every use case has a model loaded",
                           "responses": {"200": _json_content({"type": "object"}, "ready"),
                                         "503": _json_content({"type": "object"}, "a use case has no model yet")}}},
        "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics",
                             "responses": {"200": {"description": "metrics",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    }
    for use_case, model in sorted(models.items()):
        schemas[f"{use_case}_row"] = {
            "type": "object", "additionalProperties": False, "required": [f.name for f in model.fields],
            "properties": {f.name: field_schema(f) for f in model.fields},
        }
        schemas[f"{use_case}_request"] = {
            "type": "object", "additionalProperties": False, "required": ["rows"],
            "properties": {"rows": {"type": "array", "minItems": 1, "maxItems": params.max_rows,
                                    "items": {"$ref": f"#/components/schemas/{use_case}_row"}}},
        }
        schemas[f"{use_case}_response"] = {
            "type": "object", "required": ["use_case", "model_version", "predictions"],
            "properties": {"use_case": {"type": "string"}, "model_version": {"type": "string"},
                           "decision_threshold": {"type": "number"},
                           "predictions": {"type": "array", "items": {"type": "object"}}},
        }
        paths[f"/predict/{use_case}"] = {"post": {
            "operationId": f"predict_{use_case}",
            "summary": f"Score raw rows with {use_case}@{params.alias} (v{model.version} now)",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{use_case}_request"}}}},
            "responses": {
                "200": _json_content({"$ref": f"#/components/schemas/{use_case}_response"}, "one prediction per row"),
                "400": _json_content(error, "the body is not JSON"),
                "413": _json_content(error, f"the body is larger than {params.max_body_bytes} bytes"),
                "422": _json_content(error, "the rows do not match the model signature"),
            },
        }}
    return {"openapi": "3.0.3",
            "info": {"title": "funnel serving", "version": "1",
                     "description": "Raw rows in, predictions of each use case's @champion out."},
            "paths": paths, "components": {"schemas": schemas}}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None):
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

    def __init__(self, store: ModelStore) -> None:
        import orjson

        self.store = store
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
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self._observe(label, status, time.perf_counter() - started)

    async def answer(self, use_case: str, headers, receive) -> tuple[int, dict[str, Any], str | None]:
        store = self.store
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
        packed, rows = parse_rows(model.fields, payload, store.params.max_rows)
        outputs = await model.batcher.submit(packed, rows)
        answer = {"use_case": use_case, "model_version": model.version, "predictions": model.to_predictions(outputs)}
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


def build_app(store: ModelStore):
    """The ASGI app: /predict/<use_case> (bare ASGI), /health, /ready, /metrics, /openapi.json (Starlette)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import Response
    from starlette.routing import Route

    params, metrics = store.params, store.metrics
    predict = PredictEndpoint(store)

    async def predict_route(request):  # never called: POST goes to ``predict``, other methods get a 405
        raise HTTPException(405)

    async def health(request):
        return json_response({"status": "ok"})

    async def ready(request):
        served = store.served()
        versions = {uc: served[uc].version if uc in served else None for uc in store.use_cases}
        missing = [uc for uc, v in versions.items() if v is None]
        return json_response({"ready": not missing, "versions": versions}, 503 if missing else 200)

    async def metrics_endpoint(request):
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def openapi(request):
        return json_response(build_openapi(store.served(), params))

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
    framework = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error})

    async def app(scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/predict/"):
            await predict(scope, receive, send)
        else:
            await framework(scope, receive, send)

    return app


def open_store(settings: Settings, use_cases: list[str], params: ServeParams) -> ModelStore:
    """Load every use case's champion and start watching the alias (raises ServingError if one is missing)."""
    store = ModelStore(settings, use_cases, params, ServingMetrics())
    try:
        store.load_all()
    except Exception:
        store.close()
        raise
    store.start_watching()
    return store


def server_config(app, host: str, port: int, **options: Any):
    """uvicorn settings for the serving app (``options``: e.g. ``workers`` with an app factory)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, loop="uvloop", http="httptools", lifespan="off",
                          access_log=False, log_level="warning", timeout_keep_alive=30,
                          proxy_headers=False, **options)


def no_champion_error(settings: Settings, missing: list[str], alias: str) -> ServingError:
    return ServingError(
        f"no @{alias} to serve for {missing}; train one first with "
        f"`funnel retrain {missing[0]}` (or check MLFLOW_TRACKING_URI: {settings.tracking_uri})"
    )


def check_champions(settings: Settings, use_cases: list[str], alias: str) -> dict[str, str]:
    """The version each use case's ``alias`` points at; ServingError naming those without one."""
    from components.release import registry

    found = {uc: registry.get_alias_version(settings, uc, alias) for uc in use_cases}
    missing = [uc for uc, version in found.items() if version is None]
    if missing:
        raise no_champion_error(settings, missing, alias)
    return {uc: str(version.version) for uc, version in found.items()}


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
