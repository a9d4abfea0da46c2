"""The retrain flow on the production stack: deployed to a process work pool, run by a worker,
tracked by an authenticated MLflow server on PostgreSQL with S3 artifacts, data on an S3 DVC remote."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

from tests.conftest import FAST

pytestmark = [pytest.mark.stack, pytest.mark.integration]

INTENT_FAST = {key: value for key, value in FAST.items() if key.startswith("use_cases.intent.")}


def http_status(url: str, user: str | None = None, password: str | None = None) -> int:
    request = urllib.request.Request(url)
    if user is not None:
        request.add_header("Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def s3_keys(stack, bucket: str) -> list[str]:
    import boto3

    env = stack.client_env
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"])
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def test_unauthenticated_mlflow_requests_are_refused(stack):
    url = stack.client_env["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/registered-models/search"
    user = stack.client_env["MLFLOW_TRACKING_USERNAME"]
    assert http_status(url) == 401
    assert http_status(url, user, "not-the-password") == 401
    assert http_status(url, user, stack.client_env["MLFLOW_TRACKING_PASSWORD"]) == 200


def test_the_prefect_api_refuses_requests_without_its_credentials(stack):
    """Nobody who merely reaches the Prefect port can run deployments or answer a release review."""
    api = stack.client_env["PREFECT_API_URL"]
    user, password = stack.client_env["PREFECT_API_AUTH_STRING"].split(":", 1)
    assert http_status(f"{api}/deployments/filter") in (401, 405)
    assert http_status(f"{api}/flow_runs/00000000-0000-0000-0000-000000000000") == 401
    assert http_status(f"{api}/flow_runs/00000000-0000-0000-0000-000000000000", user, "wrong") == 401
    assert http_status(f"{api}/flow_runs/00000000-0000-0000-0000-000000000000", user, password) == 404
    assert http_status(f"{api}/health") == 200  # the probe stays open


def test_the_worker_cannot_manage_users_or_delete_another_use_cases_model(stack, monkeypatch):
    """The worker runs as its own MLflow user (infra/mlflow/create-worker-user.py), not the admin."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    url = stack.client_env["MLFLOW_TRACKING_URI"]
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", stack.client_env["MLFLOW_TRACKING_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.client_env["MLFLOW_TRACKING_PASSWORD"])
    MlflowClient(tracking_uri=url, registry_uri=url).create_registered_model("another-teams-model")
    for key, value in stack.worker_credentials.items():
        monkeypatch.setenv(key, value)
    worker = MlflowClient(tracking_uri=url, registry_uri=url)
    with pytest.raises(MlflowException) as refused:
        AuthServiceClient(url).create_user("intruder", "intruder-password-1")
    assert refused.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(MlflowException) as refused:
        worker.delete_registered_model("another-teams-model")
    assert refused.value.error_code == "PERMISSION_DENIED"
    # what the worker creates, it manages (a use case's registered model)
    worker.create_registered_model("workers-own-model")
    worker.delete_registered_model("workers-own-model")
    # the ledger's actor (and a reviewer's name) is the user the server confirmed, not a free-text
    # setting: FUNNEL_ACTOR cannot claim another identity while signed in
    from components.config import load_settings
    from components.release.ledger import current_actor

    monkeypatch.setenv("FUNNEL_ACTOR", "somebody-else")
    settings = load_settings(env={"MLFLOW_TRACKING_URI": url}, repo_root=Path(__file__).resolve().parents[2])
    assert current_actor(settings) == stack.worker_credentials["MLFLOW_TRACKING_USERNAME"]
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    from components.errors import RegistryError

    with pytest.raises(RegistryError, match="HTTP 401"):
        current_actor(settings)


def test_the_workers_s3_key_reaches_the_dvc_bucket_only(stack):
    """The workers' S3 user (infra/minio/worker-policy.json, enforced by moto as by MinIO) reads and
    writes the DVC remote, and cannot read or write MLflow's artifacts."""
    import boto3
    from botocore.exceptions import ClientError

    env, s = stack.client_env, stack.settings
    worker = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                          aws_access_key_id=s["MINIO_WORKER_USER"], aws_secret_access_key=s["MINIO_WORKER_PASSWORD"])
    worker.put_object(Bucket=s["DVC_BUCKET"], Key="probe/worker.txt", Body=b"ok")
    assert worker.get_object(Bucket=s["DVC_BUCKET"], Key="probe/worker.txt")["Body"].read() == b"ok"
    for call in (lambda: worker.list_objects_v2(Bucket=s["MLFLOW_ARTIFACTS_BUCKET"]),
                 lambda: worker.put_object(Bucket=s["MLFLOW_ARTIFACTS_BUCKET"], Key="probe.txt", Body=b"x"),
                 lambda: worker.delete_bucket(Bucket=s["DVC_BUCKET"])):
        with pytest.raises(ClientError, match="AccessDenied"):
            call()


def test_mlflow_and_prefect_keep_separate_databases(stack):
    import psycopg

    base = stack.client_env["FUNNEL_POSTGRES_URL"]
    versions = {}
    for db in (stack.settings["MLFLOW_DB"], stack.settings["PREFECT_DB"]):
        with psycopg.connect(f"{base}/{db}") as connection:
            versions[db] = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert versions[stack.settings["MLFLOW_DB"]] != versions[stack.settings["PREFECT_DB"]]


def test_retrain_deployed_to_the_pool_runs_on_the_worker(stack, worker_checkout, monkeypatch):
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    env = stack.client_env
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(key, env[key])
    pool = stack.settings["PREFECT_WORK_POOL"]
    # what an operator types: `funnel schedule deploy` from the checkout the workers run
    deployed = subprocess.run(
        [str(Path(sys.executable).parent / "funnel"), "schedule", "deploy", "intent", "--pool", pool],
        cwd=worker_checkout, capture_output=True, text=True, timeout=300,
        env={**os.environ, **env, "FUNNEL_REPO_ROOT": str(worker_checkout)},
    )
    assert deployed.returncode == 0, deployed.stderr
    assert f"1 deployment(s) on work pool {pool}" in deployed.stdout
    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"], PREFECT_API_AUTH_STRING: env["PREFECT_API_AUTH_STRING"]}):
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("retrain/intent")
        run = run_deployment("retrain/intent", parameters={"use_case": "intent", "overrides": INTENT_FAST},
                             timeout=900, poll_interval=3)
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run.id)
    assert run.state.is_completed(), f"{run.state}\n{stack.tail('prefect-worker', 80)}"
    assert run.work_pool_name == pool
    assert deployment.work_pool_name == pool
    assert deployment.schedules, "the deployment carries the cron schedule from params.yaml"
    # one run of the deployment at a time on the server (the rest wait for a slot)
    assert deployment.global_concurrency_limit is not None
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"

    # the registry on the MLflow server: version 1 is the champion (no champion before it)
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias("intent", "champion")
    assert champion.version == "1"
    data_md5 = client.get_run(champion.run_id).data.tags["data_md5"]
    assert client.get_run(champion.run_id).data.tags["prefect_flow_run_id"] == str(run.id)

    # the run's artifacts live in the S3 bucket behind the MLflow server
    artifacts = s3_keys(stack, stack.settings["MLFLOW_ARTIFACTS_BUCKET"])
    assert any(key.endswith("/MLmodel") for key in artifacts), artifacts[:20]
    assert any("/review/" in key for key in artifacts), artifacts[:20]

    # the data snapshot is on the S3 DVC remote under the md5 the model version records
    remote = s3_keys(stack, stack.settings["DVC_BUCKET"])
    assert f"funnel/files/md5/{data_md5[:2]}/{data_md5[2:]}" in remote, remote
    assert data_md5 in (worker_checkout / "dvc.lock").read_text()


def test_champion_loads_from_the_stack(stack, worker_checkout, monkeypatch):
    """The champion served from the stack: loaded through the authenticated, S3-proxying server."""
    import pandas as pd

    from components.config import load_settings
    from components.release.registry import load_scorer

    for key, value in stack.client_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FUNNEL_REPO_ROOT", str(worker_checkout))
    settings = load_settings()
    version, model, threshold = load_scorer(settings, "intent", "champion")
    rows = pd.read_csv(worker_checkout / "data" / "intent" / "online_shoppers_intention.csv").head(5)
    scores = model.predict(rows.drop(columns=["Revenue"]))
    assert version == "1"
    assert 0 < threshold < 1
    assert len(scores) == 5


def test_drift_reads_the_champion_snapshot_from_the_s3_remote(stack, tmp_path, monkeypatch):
    """A checkout that never trained (no DVC cache: the champion's snapshot exists only on the S3
    remote) reads it through DVC's S3 filesystem, and the drift flow compares against it."""
    from mlflow import MlflowClient
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from components.data import versioning
    from flows.monitor import drift
    from tests.conftest import make_project

    env = stack.client_env
    fresh = make_project(tmp_path / "fresh")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FUNNEL_REPO_ROOT", str(fresh))
    monkeypatch.chdir(fresh)
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias("intent", "champion")
    md5, remote = champion.tags["data_md5"], env["FUNNEL_DVC_REMOTE"]
    assert versioning.cached_snapshot(fresh, md5, remote) is None  # not on this machine
    frame = versioning.read_cached_snapshot(fresh, md5, remote)
    assert frame is not None
    assert len(frame) == int(client.get_run(champion.run_id).data.tags["data_rows"])
    assert versioning.read_cached_snapshot(fresh, "0" * 32, remote) is None  # absent is None, not an error
    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"], PREFECT_API_AUTH_STRING: env["PREFECT_API_AUTH_STRING"]}):
        summary = drift("intent", retrain_on_drift=False, overrides=INTENT_FAST)
    assert summary["champion_version"] == "1"
    assert isinstance(summary["drifted"], bool)


def test_a_release_review_computes_psi_against_the_champion_snapshot_on_the_s3_remote(stack, tmp_path, monkeypatch):
    """A retrain from another checkout (other data, no DVC cache of the champion's): the review's
    feature shift reads the champion's snapshot from the S3 remote."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from components.errors import GateFailedError
    from flows.retrain import retrain
    from tests.conftest import make_project

    env = stack.client_env
    other = make_project(tmp_path / "other", intent_rows=2000)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FUNNEL_REPO_ROOT", str(other))
    monkeypatch.chdir(other)
    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"], PREFECT_API_AUTH_STRING: env["PREFECT_API_AUTH_STRING"]}):
        try:
            version = retrain("intent", INTENT_FAST)["version"]
        except GateFailedError as failed:  # the gate's decision does not matter here, the review does
            version = failed.version
    review = (other / "reports" / "intent" / f"review-v{version}.md").read_text()
    assert "PSI not computed" not in review
    assert "| ProductRelated_Duration |" in review or "| ProductRelated |" in review


def test_racing_promotions_through_the_mlflow_server_are_serialised_by_the_shared_lock(stack, tmp_path, monkeypatch):
    """Two workers on different machines, both talking to MLflow over HTTP as the compose workers
    do, share no lock file: the PostgreSQL advisory lock at FUNNEL_LOCK_URL alone must let exactly
    one of two racing promotions win."""
    from tests.components.release.test_ledger import ROOT, assert_one_racer_wins, registry_with_versions

    env = stack.client_env
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(key, env[key])  # the racers (spawned processes) inherit them
    checkouts = []
    for name in ("machine-a", "machine-b"):
        checkout = tmp_path / name
        checkout.mkdir()
        for file in ("params.yaml", "dvc.yaml"):
            (checkout / file).write_text((ROOT / file).read_text())
        checkouts.append(checkout)
    settings = registry_with_versions(tmp_path, 3, tracking_uri=env["MLFLOW_TRACKING_URI"], use_case="race",
                                      env={"FUNNEL_LOCK_URL": env["FUNNEL_LOCK_URL"]})
    assert settings.tracking_uri.startswith("http://")
    assert_one_racer_wins(settings, tuple(checkouts), use_case="race")


def test_a_held_promotion_lock_times_out_with_a_clear_message(stack):
    from components.errors import LockTimeoutError
    from components.locks import advisory_lock

    url = stack.client_env["FUNNEL_LOCK_URL"]
    with advisory_lock(url, "alias-intent", 5, "moving an alias of intent"):
        with (pytest.raises(LockTimeoutError, match="another run has held the lock 'alias-intent' in PostgreSQL"),
              advisory_lock(url, "alias-intent", 1, "moving an alias of intent")):
            pass
        with advisory_lock(url, "alias-fraud", 1, "moving an alias of fraud"):  # other use cases are free
            pass
