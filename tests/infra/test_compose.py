"""infra/: the compose file validates, keeps its promises (separate databases, auth, health checks,
no committed secrets), and the Kubernetes files parse."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import skip_or_fail

INFRA = Path(__file__).resolve().parents[2] / "infra"
COMPOSE = INFRA / "docker-compose.yml"


def test_compose_file_validates_with_docker_compose():
    tool = shutil.which("docker-compose")
    if tool is None:
        skip_or_fail("docker-compose (Debian package) is not installed; .ci/run installs it")
    result = subprocess.run([tool, "--env-file", str(INFRA / ".env.example"), "-f", str(COMPOSE), "config", "-q"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_compose_promises():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"postgres", "minio", "mlflow", "prefect-server", "prefect-worker"} <= set(services)
    env = {name: str(service.get("environment", {})) for name, service in services.items()}
    # MLflow and Prefect use separate databases (no shared alembic_version table)
    assert "${MLFLOW_DB:-mlflow}" in env["mlflow"]
    assert "${PREFECT_DB:-prefect}" in env["prefect-server"]
    assert "--app-name basic-auth" in (INFRA / "mlflow" / "start.sh").read_text()
    assert "--allowed-hosts" in (INFRA / "mlflow" / "start.sh").read_text()
    for name in ("postgres", "minio", "mlflow", "prefect-server", "prefect-worker"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    assert set(compose["volumes"]) == {"pgdata", "minio-data"}
    # promotions are serialised in PostgreSQL, which every worker reaches (not in a container's file)
    worker = services["prefect-worker"]
    assert worker["environment"]["FUNNEL_LOCK_URL"].startswith("postgresql://")
    assert "${FUNNEL_LOCK_DB:-funnel_locks}" in worker["environment"]["FUNNEL_LOCK_URL"]
    assert "${FUNNEL_LOCK_DB:-funnel_locks}" in env["postgres"]
    # least privilege: the worker is neither MLflow's admin nor MinIO's root, and the Prefect API
    # it talks to asks for credentials
    assert worker["environment"]["MLFLOW_TRACKING_USERNAME"] == "${MLFLOW_WORKER_USERNAME}"
    assert worker["environment"]["AWS_ACCESS_KEY_ID"] == "${MINIO_WORKER_USER}"
    assert "MINIO_ROOT" not in str(worker["environment"])
    assert services["mlflow-users"]["command"][-1] == "/opt/mlflow/create-worker-user.py"
    assert "mc admin policy attach funnel funnel-dvc" in services["minio-buckets"]["entrypoint"]
    assert "./minio/worker-policy.json:/policy/worker-policy.json:ro" in services["minio-buckets"]["volumes"]
    assert services["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"] == "${PREFECT_AUTH_STRING}"
    assert worker["environment"]["PREFECT_API_AUTH_STRING"] == "${PREFECT_AUTH_STRING}"
    # the lineage commit is the source commit, passed to the image build
    assert worker["build"]["args"]["FUNNEL_GIT_COMMIT"] == "${FUNNEL_GIT_COMMIT:-unknown}"
    dockerfile = (INFRA / "funnel.Dockerfile").read_text()
    assert "ARG FUNNEL_GIT_COMMIT" in dockerfile
    assert "ENV FUNNEL_GIT_COMMIT=$FUNNEL_GIT_COMMIT" in dockerfile


def test_no_secret_is_committed_and_every_setting_is_listed():
    text = COMPOSE.read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    listed = {line.split("=", 1)[0] for line in (INFRA / ".env.example").read_text().splitlines()
              if line and not line.startswith("#")}
    assert used <= listed, f"not in .env.example: {sorted(used - listed)}"
    for key in ("PASSWORD", "SECRET"):
        for line in text.splitlines():
            if key in line and ":" in line and "${" not in line and "$$" not in line:
                raise AssertionError(f"a literal secret in docker-compose.yml: {line.strip()}")


def test_kubernetes_files_parse():
    kinds = [doc["kind"] for doc in yaml.safe_load_all((INFRA / "k8s" / "mlflow.yaml").read_text())]
    assert kinds == ["Deployment", "Service"]
    values = yaml.safe_load((INFRA / "k8s" / "prefect-worker-values.yaml").read_text())
    assert values["worker"]["config"]["type"] == "kubernetes"


def test_worker_image_leaves_out_data_that_may_not_be_redistributed():
    """The worker image is built from the repository root: frappe and MovieLens copies, local
    registries and caches stay out of it (.dockerignore), and it installs the S3/PostgreSQL extra."""
    ignored = set((INFRA.parent / ".dockerignore").read_text().split())
    assert {"data/ctr", "data/recommend", ".venv", "mlruns.db", ".dvc/cache"} <= ignored
    assert '".[stack]"' in (INFRA / "funnel.Dockerfile").read_text()
