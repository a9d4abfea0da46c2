#!/bin/sh
# Start the MLflow server with basic auth. The auth config is written from the environment, so
# no credential is stored in the image or the repository.
#   MLFLOW_BACKEND_STORE_URI, MLFLOW_ARTIFACTS_DESTINATION, MLFLOW_AUTH_DATABASE_URI,
#   MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (the admin), MLFLOW_ALLOWED_HOSTS, MLFLOW_PORT
set -eu
config="${MLFLOW_AUTH_CONFIG_PATH:-/tmp/mlflow-basic-auth.ini}"
cat > "$config" <<INI
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = ${MLFLOW_AUTH_DATABASE_URI}
admin_username = ${MLFLOW_TRACKING_USERNAME}
admin_password = ${MLFLOW_TRACKING_PASSWORD}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
export MLFLOW_AUTH_CONFIG_PATH="$config"
exec mlflow server \
  --backend-store-uri "${MLFLOW_BACKEND_STORE_URI}" \
  --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION}" \
  --host "${MLFLOW_HOST:-0.0.0.0}" --port "${MLFLOW_PORT:-5000}" \
  --allowed-hosts "${MLFLOW_ALLOWED_HOSTS}" \
  --app-name basic-auth
