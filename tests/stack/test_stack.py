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
    from prefect.settings import PREFECT_API_URL, temporary_settings

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
    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
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


def test_racing_promotions_from_two_checkouts_are_serialised_by_postgres(stack, tmp_path):
    """Two workers on different machines share no lock file: the registry's PostgreSQL advisory
    lock alone must let exactly one of two racing promotions win."""
    import psycopg

    from tests.components.release.test_ledger import ROOT, assert_one_racer_wins, registry_with_versions

    base = stack.client_env["FUNNEL_POSTGRES_URL"]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        connection.execute("CREATE DATABASE ledger_race")
    checkouts = []
    for name in ("machine-a", "machine-b"):
        checkout = tmp_path / name
        checkout.mkdir()
        for file in ("params.yaml", "dvc.yaml"):
            (checkout / file).write_text((ROOT / file).read_text())
        checkouts.append(checkout)
    uri = base.replace("postgresql://", "postgresql+psycopg://", 1) + "/ledger_race"
    settings = registry_with_versions(tmp_path, 3, tracking_uri=uri)
    assert_one_racer_wins(settings, tuple(checkouts))
