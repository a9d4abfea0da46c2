"""Create the workers' MLflow user: a plain (non-admin) account, so a worker can register and
promote the models it creates but cannot manage users or touch another team's models.

The server's default permission is NO_PERMISSIONS (infra/mlflow/start.sh): a worker gets MANAGE
only on the experiments and registered models it creates itself. Run with the admin's
credentials in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD and the worker's in
MLFLOW_WORKER_USERNAME / MLFLOW_WORKER_PASSWORD; an existing user keeps its account (the
password is updated), so the script can run on every start.
"""

from __future__ import annotations

import os
import sys

from mlflow.exceptions import MlflowException
from mlflow.server.auth.client import AuthServiceClient


def main() -> int:
    url = os.environ["MLFLOW_TRACKING_URI"]
    user, password = os.environ["MLFLOW_WORKER_USERNAME"], os.environ["MLFLOW_WORKER_PASSWORD"]
    if user == os.environ.get("MLFLOW_TRACKING_USERNAME"):
        print("MLFLOW_WORKER_USERNAME must differ from the admin user", file=sys.stderr)  # noqa: T201
        return 2
    client = AuthServiceClient(url)
    try:
        client.create_user(user, password)
        print(f"created MLflow user {user}")  # noqa: T201
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        client.update_user_password(user, password)
        print(f"MLflow user {user} exists; password updated")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
