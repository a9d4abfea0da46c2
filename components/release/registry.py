"""Track runs and register models in MLflow; the only module that calls MLflow.

It is also the MLflow *flavor module* funnel logs models with: ``mlflow.keras.save_model`` writes
the native ``keras`` flavor (``mlflow.keras.load_model`` returns the Keras model), and the
``python_function`` flavor points at the stable entry point ``components.pyfunc`` (which calls
``load_pyfunc`` here): MLflow's Keras 3 pyfunc calls ``model.predict`` on a NumPy array, which
Keras 3 rejects for string inputs; ours runs the saved model through a traced ``tf.function``."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.config import Settings
from components.data.ingest import load_transforms, snapshot_transforms
from components.overrides import flatten_params
from components.release.examples import check_example, synthetic_example
from components.release.run_record import keep_distinct_values, run_metrics, version_tags
from components.release.saved_model import COLUMN_TYPES, NUMPY_TYPES, pinned_requirements, request_inputs
from components.release.saved_model import THRESHOLD_TAG as THRESHOLD_TAG
from components.release.saved_model import TRANSFORMS_KEY as TRANSFORMS_KEY
from components.release.saved_model import decision_threshold as decision_threshold
from components.release.saved_model import model_transforms as model_transforms
from components.release.saved_model import score_frame as score_frame

logger = logging.getLogger(__name__)

MODEL_NAME_IN_RUN = "model"
# the stable entry point every MLmodel names: never moves (see components/pyfunc.py)
LOADER_MODULE = "components.pyfunc"


@dataclass(frozen=True)
class RegisteredVersion:
    use_case: str
    version: str
    run_id: str
    model_uri: str


def connect(settings: Settings):
    """An MlflowClient on the settings' tracking/registry URI (the process-wide URI is set too)."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def initialise_store(settings: Settings) -> None:
    """Create the tracking and registry tables now: parallel workers opening a new SQLite store race to create them."""
    client = connect(settings)
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)


def ensure_experiment(client, name: str, artifact_location: str | None) -> str:
    """The id of the experiment ``name``, created (with the embedded artifact folder) if missing."""
    if (experiment := client.get_experiment_by_name(name)) is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=f"{artifact_location}/{name}" if artifact_location else None)


# Flavor module contract: save_model(...) and _load_pyfunc(path).
def save_model(keras_model, path, mlflow_model=None, signature=None, input_example=None, metadata=None,
               validate_serving_input=True):  # noqa: ARG001 - Model.log hands its own flags to the flavor too
    """Save with mlflow.keras, then route the pyfunc flavor to this module's loader."""
    import mlflow.keras
    from mlflow.models import Model

    mlflow_model = mlflow_model or Model()
    # mlflow.keras.save_model writes the input example before it creates ``path``
    Path(path).mkdir(parents=True, exist_ok=True)
    # the keras flavor takes tensor signatures only; a column signature (optional inputs, see
    # build_signature) is written in its place afterwards: the pyfunc is ours and reads columns
    mlflow.keras.save_model(
        keras_model, path, mlflow_model=mlflow_model, signature=as_tensor_signature(signature),
        input_example=input_example, metadata=metadata, pip_requirements=pinned_requirements(),
    )
    if signature is not None:
        mlflow_model.signature = signature
    mlflow_model.flavors["python_function"]["loader_module"] = LOADER_MODULE
    mlflow_model.save(str(Path(path) / "MLmodel"))


def as_tensor_signature(signature):
    """A column signature as (-1, 1) tensors of the same names and types (a tensor one as it is)."""
    if signature is None or signature.inputs.is_tensor_spec():
        return signature
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    inputs = [TensorSpec(np.dtype(object) if c.type.name == "string" else c.type.to_numpy(), (-1, 1), c.name)
              for c in signature.inputs.inputs]
    return ModelSignature(inputs=Schema(inputs), outputs=signature.outputs, params=signature.params)


def load_pyfunc(path: str):
    """pyfunc loader (via ``components.pyfunc``): the saved Keras model behind a traced, raw-row scorer."""
    from mlflow.keras.load import _load_keras_model
    from mlflow.models import Model

    from components.models import register_layers
    from components.models.scorer import RowScorer

    register_layers()  # the custom layers the saved model names
    model_dir = Path(path) if (Path(path) / "MLmodel").is_file() else Path(path).parent
    mlmodel = Model.load(str(model_dir / "MLmodel"))
    transforms = load_transforms((mlmodel.metadata or {}).get(TRANSFORMS_KEY))
    return RowScorer(_load_keras_model(str(model_dir), mlmodel), transforms)


def check_input_example(use_case: str, keras_model, signature, example, transforms: dict | None = None) -> None:
    """The example against the signature, then as serving takes it: InputSchemaError when it does not fit."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import validate_schema

    try:
        validate_schema(example, signature.inputs)
    except (MlflowException, ValueError, TypeError, KeyError):
        from components.errors import InputSchemaError

        raise InputSchemaError(f"{use_case}: the synthetic input example (built from validate.columns) does not fit "
                               "the model's signature; fix the column rules in params.yaml or set common.input_example: off") from None
    check_example(use_case, keras_model, example, transforms)


def build_signature(keras_model, transforms: dict | None = None):
    """One (-1, 1) tensor per raw column (with ``data.transforms``: the columns they read, then
    the inputs they leave alone), probability out; strings as objects, so a null stays a null.

    A model with optional inputs (``keras.Input(optional=True)``) gets one column per input
    instead, the optional ones ``required=False``: MLflow's tensor specs are always required, and
    its pyfunc drops a column the signature does not name."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    columns, optional = request_inputs(keras_model, transforms)
    if optional:
        inputs = Schema([ColSpec(COLUMN_TYPES[dtype], name, required=name not in optional)
                         for name, dtype in columns.items()])
    else:
        inputs = Schema([TensorSpec(NUMPY_TYPES[dtype], (-1, 1), name) for name, dtype in columns.items()])
    if isinstance(keras_model.output, dict):
        outputs = Schema([
            TensorSpec(NUMPY_TYPES.get(t.dtype, np.dtype("float32")), (-1, *t.shape[1:]), name)
            for name, t in keras_model.output.items()
        ])
    else:
        outputs = Schema([TensorSpec(np.dtype("float32"), (-1,), "probability")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_training_run(
    settings: Settings, config, snapshot, data_version, trained, evaluation, validation, context: dict[str, str],
    challenger_alias: str, input_example: str = "synthetic",
) -> RegisteredVersion:
    """Log params, metrics, plots, data lineage and the model; register it as ``@challenger``."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas  # where mlflow.data.from_pandas is defined (typed)
    from mlflow.models import Model

    client = connect(settings)
    use_case = config.name
    experiment_id = ensure_experiment(client, use_case, settings.artifact_location)
    tags = {
        "use_case": use_case, "git_commit": context.get("git_commit", "unknown"),
        "prefect_flow_run_id": context.get("flow_run_id", ""), "data_md5": data_version.md5,
        "data_path": data_version.path, "data_rows": str(snapshot.rows), "data_source": snapshot.source,
        "validation": json.dumps(validation.statistics),
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{use_case}-{data_version.md5[:8]}", tags=tags) as run:
        params = flatten_params("", {
            "seed": config.seed,
            "features": config.features,
            "train": config.train,
            "evaluate": config.evaluate,
            "gate": config.params.gate,
        })
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        metrics = run_metrics(trained, evaluation)
        mlflow.log_metrics(metrics)
        for plot in evaluation.plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        mlflow.log_dict(evaluation.as_json(), "evaluation.json")
        mlflow.log_dict({"checks": list(validation.checks)}, "validation/gx_result.json")
        dataset = from_pandas(snapshot.frame, source=str(settings.repo_root / data_version.path),
                              name=f"{use_case}-snapshot", targets=config.label, digest=data_version.md5[:36])
        # MLflow's own inference, from each column's distinct values instead of every row: the same schema
        dataset.schema = from_pandas(keep_distinct_values(snapshot.frame), source=dataset.source, digest=dataset.digest).schema
        mlflow.log_input(dataset, context="training")
        # the data.transforms the snapshot was built with: applied to raw rows at serving time
        transforms = snapshot_transforms(snapshot.frame)
        # off, or synthetic: real rows may be personal data (common.input_example)
        columns, optional = request_inputs(trained.serving, transforms)
        columns = {n: d for n, d in columns.items() if n not in optional}  # the example shows the minimum
        example = None if input_example == "off" else synthetic_example(columns, config.params.validate.columns, transforms)
        signature = build_signature(trained.serving, transforms)
        if example is not None:
            check_input_example(use_case, trained.serving, signature, example, transforms)
        info = Model.log(
            artifact_path=None,
            name=MODEL_NAME_IN_RUN,
            flavor=sys.modules[__name__],
            keras_model=trained.serving,
            signature=signature,
            input_example=example,
            # checked above on the model in memory; MLflow's check would save, load and score it again
            validate_serving_input=False,
            metadata={THRESHOLD_TAG: trained.threshold, "data_md5": data_version.md5,
                      **({TRANSFORMS_KEY: transforms} if transforms else {})},
        )
        run_id = run.info.run_id
    # registered with its tags in one write (a set_model_version_tag per tag took ~1 s for 48)
    registered = mlflow.register_model(info.model_uri, use_case, tags=version_tags(run_id, tags, config, data_version,
                                                                                  trained, evaluation))
    version = str(registered.version)
    client.set_registered_model_alias(use_case, challenger_alias, version)
    logger.info("registered %s v%s (run %s) as @%s", use_case, version, run_id, challenger_alias)
    return RegisteredVersion(use_case, version, run_id, f"models:/{use_case}/{version}")


def get_alias_version(settings: Settings, use_case: str, alias: str):
    """The ModelVersion behind ``<use_case>@<alias>``; None when the model or the alias does not
    exist; RegistryError when the registry refuses or fails (never "absent" then)."""
    client = connect(settings)
    model = _unless_absent(settings, f"reading {use_case}", lambda: client.get_registered_model(use_case), use_case)
    if model is None or alias not in model.aliases:
        return None
    return _unless_absent(settings, f"reading {use_case}@{alias}",
                          lambda: client.get_model_version(use_case, str(model.aliases[alias])))


def _unless_absent(settings: Settings, what: str, call, model: str | None = None):
    """``call()``; None when MLflow says RESOURCE_DOES_NOT_EXIST, or PERMISSION_DENIED for a model
    the user's search cannot find (MLflow's auth denies a model that does not exist yet); else RegistryError."""
    from mlflow.exceptions import MlflowException

    from components.errors import RegistryError

    try:
        return call()
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        if error.error_code == "PERMISSION_DENIED" and model is not None and not _unless_absent(
                settings, f"searching for {model}", lambda: connect(settings).search_registered_models(
                    filter_string=f"name = '{model.replace(chr(39), '')}'", max_results=1)):
            return None
        status = error.get_http_status_code() if error.error_code != "INTERNAL_ERROR" else None
        raise RegistryError(settings.tracking_uri, what, error.error_code, status) from None


def authenticated_user(settings: Settings) -> str | None:
    """The MLflow user this process is signed in as, confirmed by the server (MLflow's basic
    auth answers ``users/get`` for oneself only with the right password); None when the registry
    has no user accounts (embedded SQLite, or a server without the auth app)."""
    import os

    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    from components.errors import RegistryError

    username = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if not settings.tracking_uri.startswith(("http://", "https://")) or not username:
        return None
    try:
        return AuthServiceClient(settings.tracking_uri).get_user(username).username
    except MlflowException as error:
        if error.error_code == "ENDPOINT_NOT_FOUND":  # no auth app on this server
            return None
        raise RegistryError(settings.tracking_uri, f"confirming the MLflow user {username}", error.error_code,
                            error.get_http_status_code()) from None


def load_scorer(settings: Settings, use_case: str, alias: str):
    """The pyfunc model at ``models:/<use_case>@<alias>`` and its decision threshold, or None."""
    version = get_alias_version(settings, use_case, alias)
    if version is None:
        return None
    return str(version.version), load_version_model(use_case, str(version.version)), decision_threshold(version.tags)


def load_version_model(use_case: str, version: str):
    """The pyfunc model of one version, by number (an alias may move while it loads); the
    tracking URI is the one ``connect`` set."""
    import mlflow

    return mlflow.pyfunc.load_model(f"models:/{use_case}/{version}")


def load_row_scorer(settings: Settings, use_case: str, alias: str):
    """(version, RowScorer) of ``<use_case>@<alias>``: the compiled scorer behind the pyfunc model."""
    from components.errors import FunnelError
    from components.models.scorer import RowScorer

    if (loaded := load_scorer(settings, use_case, alias)) is None:
        raise FunnelError(f"{use_case} has no @{alias} to score with; run `funnel retrain {use_case}` first")
    return loaded[0], RowScorer(loaded[1].get_raw_model())  # (version, pyfunc model, threshold)


def write_version_tags(settings: Settings, use_case: str, version: str, tags: dict[str, str]) -> None:
    client = connect(settings)
    for key, value in tags.items():
        client.set_model_version_tag(use_case, version, key, value)


def set_alias(settings: Settings, use_case: str, alias: str, version: str) -> None:
    connect(settings).set_registered_model_alias(use_case, alias, version)


def list_versions(settings: Settings, use_case: str) -> list:
    return sorted(connect(settings).search_model_versions(f"name='{use_case}'"), key=lambda v: int(v.version))


def model_tags(settings: Settings, use_case: str) -> dict[str, str]:
    """The registered model's own tags (where the promotion ledger lives); {} when not registered."""
    model = _unless_absent(settings, f"reading {use_case}'s tags", lambda: connect(settings).get_registered_model(use_case),
                           use_case)
    return dict(model.tags) if model is not None else {}


def set_model_tag(settings: Settings, use_case: str, key: str, value: str) -> None:
    connect(settings).set_registered_model_tag(use_case, key, value)


def get_version(settings: Settings, use_case: str, version: str):
    """A model version, or None when it does not exist."""
    return _unless_absent(settings, f"reading {use_case} v{version}",
                          lambda: connect(settings).get_model_version(use_case, str(version)), use_case)


def versions_with_tag(settings: Settings, key: str, value: str) -> list:
    """Every model version (any use case) whose tag ``key`` equals ``value``."""
    escaped = value.replace("'", "")
    found = connect(settings).search_model_versions(f"tags.{key} = '{escaped}'")
    return sorted(found, key=lambda v: (v.name, int(v.version)))


def get_run(settings: Settings, run_id: str):
    return connect(settings).get_run(run_id)


def run_params(settings: Settings, run_id: str) -> dict[str, str]:
    return dict(connect(settings).get_run(run_id).data.params)


def log_review_files(settings: Settings, run_id: str, paths: list[Path]) -> None:
    """Attach the release review and model card to the challenger's run."""
    client = connect(settings)
    for path in paths:
        client.log_artifact(run_id, str(path), "review")


def describe_version(settings: Settings, use_case: str, version: str, description: str) -> None:
    """Show ``description`` (the model card) on the version's page in the MLflow UI."""
    connect(settings).update_model_version(use_case, str(version), description=description[:20000])


def start_tuning_run(settings: Settings, use_case: str, params: dict[str, str], tags: dict[str, str]) -> str:
    """A tuning run in the use case's experiment (its trials are nested under it); its id."""
    client = connect(settings)
    experiment_id = ensure_experiment(client, use_case, settings.artifact_location)
    run = client.create_run(experiment_id, run_name=f"{use_case}-tune", tags={"use_case": use_case, "funnel.kind": "tuning", **tags})
    log_trial_run(settings, run.info.run_id, "", params, {}, {}, {}, None)
    return run.info.run_id


def log_trial_run(settings: Settings, parent_run_id: str, name: str, params: dict[str, str], curves: dict[str, list[float]],
                  metrics: dict[str, float], tags: dict[str, str], failed: bool | None) -> str:
    """One trial as a run nested under ``parent_run_id`` (``name`` empty: log to that run): its values,
    per-epoch curves (step = epoch) and final figures, so the MLflow UI compares the trials; its id."""
    from mlflow.entities import Metric, Param

    client, now = connect(settings), int(time.time() * 1000)
    run_id = client.create_run(client.get_run(parent_run_id).info.experiment_id, run_name=name, tags={
        "mlflow.parentRunId": parent_run_id, "funnel.kind": "tuning trial", **tags}).info.run_id if name else parent_run_id
    points = [Metric(key, float(v), now, step) for key, curve in curves.items() for step, v in enumerate(curve, start=1)]
    points += [Metric(key, float(v), now, 0) for key, v in metrics.items() if np.isfinite(v)]
    client.log_batch(run_id, metrics=points, params=[Param(k, str(v)[:500]) for k, v in params.items()])
    if failed is not None:
        client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
    return run_id


def end_tuning_run(settings: Settings, run_id: str, metrics: dict[str, float], texts: dict[str, str]) -> None:
    """Close a tuning run with its figures and text artifacts (the proposed params.yaml diff)."""
    client = connect(settings)
    log_trial_run(settings, run_id, "", {}, {}, metrics, {}, False)
    for name, text in texts.items():
        client.log_text(run_id, text, name)
