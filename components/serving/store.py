"""The served model versions and the store that hot-reloads each use case's ``@champion``."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from components.config import Settings
from components.serving.batching import MicroBatcher
from components.serving.catalogue import ServedCatalogue, serve_catalogue
from components.serving.metrics import ServingMetrics
from components.serving.schema import InputField, ServingError, keras_fields, read_fields, warm_up_rows
from components.serving.scorer import CompiledScorer
from components.serving.transforms import TransformScorer, request_fields

if TYPE_CHECKING:
    from components.data.transforms import FittedTransforms

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeParams:
    """How the server behaves; defaults suit one 2-core machine."""

    alias: str = "champion"
    poll_interval_s: float = 5.0
    max_rows: int = 1000
    max_body_bytes: int = 1024 * 1024
    # a longer string value in any field is refused (422) before the model runs
    max_string_chars: int = 10_000
    # /ready answers 503 once this many reloads in a row of a new @champion have failed
    max_failed_reloads: int = 3
    # a micro-batch takes every queued request up to this many rows
    max_batch_rows: int = 512
    # a batch smaller than the recent concurrency waits this long for the rest (0: never waits)
    max_batch_wait_ms: float = 0.0
    scoring_threads: int = 1
    # TensorFlow's intra- and inter-op threads per process (0: TensorFlow's default)
    tf_threads: int = 0

    def __post_init__(self) -> None:
        counts = (self.max_rows, self.max_batch_rows, self.scoring_threads, self.max_body_bytes,
                  self.max_string_chars, self.max_failed_reloads)
        if self.poll_interval_s <= 0 or min(counts) < 1 or self.max_batch_wait_ms < 0 or self.tf_threads < 0:
            raise ServingError(
                f"invalid serving settings {self} (common.serving in params.yaml): poll_interval_s must be > 0, "
                "max_batch_wait_ms and tf_threads >= 0, max_rows, max_batch_rows, scoring_threads, max_body_bytes, "
                "max_string_chars and max_failed_reloads >= 1"
            )


@dataclass(frozen=True)
class Readiness:
    """What ``/ready`` answers: the served version of each use case and why any is not ready."""

    versions: dict[str, str | None]
    reasons: dict[str, str]

    @property
    def ready(self) -> bool:
        return not self.reasons


def decide_readiness(use_cases: list[str], served: Mapping[str, str], champions: Mapping[str, str],
                     failed_reloads: Mapping[str, int], max_failed_reloads: int, alias: str) -> Readiness:
    """Ready when every use case serves a model, and none has failed ``max_failed_reloads``
    reloads in a row of an ``alias`` version other than the one it serves (pure)."""
    reasons = {}
    for use_case in use_cases:
        version, champion, failed = served.get(use_case), champions.get(use_case), failed_reloads.get(use_case, 0)
        if version is None:
            reasons[use_case] = "no model loaded yet" + (f" ({failed} loads failed; see the server log)" if failed else "")
        elif champion is not None and champion != version and failed >= max_failed_reloads:
            reasons[use_case] = (f"serving v{version} but @{alias} is v{champion}: {failed} reloads in a row failed "
                                 f"(limit common.serving.max_failed_reloads = {max_failed_reloads}); see the server log")
    return Readiness({uc: served.get(uc) for uc in use_cases}, reasons)


@dataclass
class ServedModel:
    use_case: str
    version: str
    run_id: str
    fields: tuple[InputField, ...]  # what a request sends: raw columns when the model has transforms
    output_names: dict[str, str]  # scorer output key -> name in the answer
    threshold: float | None
    scorer: CompiledScorer | TransformScorer
    batcher: MicroBatcher
    loaded_at: float = field(default_factory=time.time)
    # the model's checks of raw input values (components.models.scorer.RowCheck), run per request
    checks: tuple = ()
    # a cold-start model: the registered model, and the item table its served items come from
    catalogue: ServedCatalogue | None = None

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


def load_served_model(settings: Settings, use_case: str, params: ServeParams, executor: Executor,
                      observe_batch: Callable[[int], None] = lambda n: None) -> ServedModel | None:
    """Load ``<use_case>@<alias>`` fully, compile and warm it up; None when the alias is unset.

    The registry resolves the alias once and loads that version by number, so a move during the
    load is simply picked up by the next poll. A version trained with ``data.transforms`` takes
    raw rows and applies its fitted transforms to them before the Keras model.
    """
    from components.release import registry

    loaded = registry.load_scorer(settings, use_case, params.alias)
    if loaded is None:
        return None
    version, model, threshold = loaded
    run_id = model.metadata.run_id
    from components.models.scorer import input_spec, optional_inputs

    keras_model = model.get_raw_model()  # funnel's pyfunc loader hands out the Keras model
    from components.models.coldstart_layers import is_catalogue_model

    catalogue = None
    if is_catalogue_model(keras_model):  # ranks the configured item table, items added after training too
        keras_model, catalogue = serve_catalogue(settings, use_case, keras_model)
    signature = model.metadata.signature
    transforms = registry.model_transforms(model)
    # with transforms the signature names the raw columns, the Keras model the derived features
    spec, optional = input_spec(keras_model), optional_inputs(keras_model)
    fields = read_fields(signature, spec, optional) if transforms is None else keras_fields(spec, optional)
    served = build_served_model(use_case, version, run_id, keras_model, fields, signature, threshold, executor,
                                params.max_batch_rows, observe_batch, params.max_batch_wait_ms, transforms)
    served.catalogue = catalogue
    return served


def build_served_model(use_case: str, version: str, run_id: str, keras_model, fields: tuple[InputField, ...],
                       signature, threshold: float, executor: Executor, max_batch_rows: int,
                       observe_batch: Callable[[int], None] = lambda n: None, max_batch_wait_ms: float = 0.0,
                       transforms: tuple[FittedTransforms, Mapping[str, str]] | None = None) -> ServedModel:
    """Compile ``keras_model`` (its inputs are ``fields``), warm it up and give it a micro-batcher
    on ``executor``. With ``transforms`` (fitted transforms, raw column -> type family) requests
    send the raw columns and each micro-batch goes through the transforms first."""
    from components.models.scorer import row_checks

    compiled = CompiledScorer(keras_model, fields)
    scorer: CompiledScorer | TransformScorer = compiled
    if transforms is not None:
        fitted, inputs = transforms
        fields = request_fields(fitted, inputs, fields)
        scorer = TransformScorer(compiled, fitted, fields)
    outputs = scorer(warm_up_rows(fields))
    batcher = MicroBatcher(scorer, executor, max_batch_rows, observe_batch, max_batch_wait_ms)
    return ServedModel(
        use_case=use_case, version=version, run_id=run_id, fields=fields,
        output_names=output_names(signature, outputs),
        threshold=threshold if set(outputs) == {"output"} and math.isfinite(threshold) else None,
        scorer=scorer, batcher=batcher, checks=row_checks(keras_model),
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
        # per use case: the version the alias pointed at when last looked up, and how many loads
        # of a version other than the served one have failed in a row since one succeeded
        self._champions: dict[str, str] = {}
        self._failed_reloads: dict[str, int] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def get(self, use_case: str) -> ServedModel | None:
        return self._models.get(use_case)

    def served(self) -> dict[str, ServedModel]:
        return dict(self._models)

    def readiness(self) -> Readiness:
        served = {uc: m.version for uc, m in self._models.items()}
        return decide_readiness(self.use_cases, served, dict(self._champions), dict(self._failed_reloads),
                                self.params.max_failed_reloads, self.params.alias)

    def load_all(self) -> None:
        """Load every use case's champion now; raises ServingError naming those without one."""
        missing = [uc for uc in self.use_cases if not self.refresh_one(uc, raise_errors=True)]
        if missing:
            raise no_champion_error(self.settings, missing, self.params.alias)

    def refresh_one(self, use_case: str, raise_errors: bool = False) -> bool:
        """Load the alias's version if it is not the one served; True when a model is being served."""
        from components.release import registry

        current = self._models.get(use_case)
        found = None
        try:
            found = registry.get_alias_version(self.settings, use_case, self.params.alias)
            # no alias (or a registry that does not answer) says nothing about readiness: keep the count
            if found is None:
                return current is not None
            self._champions[use_case] = str(found.version)
            if current is not None and str(found.version) == current.version:
                self._failed_reloads[use_case] = 0  # e.g. a rollback to the served version
                self.refresh_catalogue(current)
                return True
            started = time.perf_counter()
            model = load_served_model(self.settings, use_case, self.params, self.executor,
                                      self.metrics.batch_rows.labels(use_case).observe)
        except Exception as exc:
            self.metrics.reloads.labels(use_case, "failed").inc()
            logger.warning("could not load %s@%s (still serving %s): %s", use_case, self.params.alias,
                           f"v{current.version}" if current else "nothing", exc)
            if found is not None:
                self._count_failed_reload(use_case, str(found.version))
            if raise_errors:
                raise
            return current is not None
        if model is None:
            return current is not None
        self.put(model)
        self._failed_reloads[use_case] = 0
        logger.info("serving %s v%s (loaded in %.1f s, was %s)", use_case, model.version,
                    time.perf_counter() - started, f"v{current.version}" if current else "none")
        return True

    def refresh_catalogue(self, current: ServedModel) -> None:
        """Serve ``current``'s version again with the item table's new items, if the table changed."""
        served = current.catalogue
        if served is None or served.table.stamp() == served.stamp:
            return
        started = time.perf_counter()
        keras_model, catalogue = serve_catalogue(self.settings, current.use_case, served.registered, served)
        if keras_model is None:  # a bad table: keep serving the items as they were, until it changes
            current.catalogue = catalogue
            return
        model = build_served_model(current.use_case, current.version, current.run_id, keras_model, current.fields,
                                   None, float("nan"), self.executor, self.params.max_batch_rows,
                                   self.metrics.batch_rows.labels(current.use_case).observe,
                                   self.params.max_batch_wait_ms)
        model.output_names, model.catalogue = current.output_names, catalogue
        self.put(model)
        logger.info("serving %s v%s with %d item(s) added after training (item table changed; %.1f s)",
                    current.use_case, current.version, catalogue.added if catalogue else 0,
                    time.perf_counter() - started)

    def _count_failed_reload(self, use_case: str, version: str) -> None:
        failed = self._failed_reloads[use_case] = self._failed_reloads.get(use_case, 0) + 1
        if failed == self.params.max_failed_reloads:
            logger.error("%s: %d reloads of @%s v%s failed in a row; /ready answers 503 until one succeeds",
                         use_case, failed, self.params.alias, version)

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
