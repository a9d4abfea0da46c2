FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/* \
 && pip install --no-cache-dir "mlflow[auth]==3.17.2" "psycopg[binary]" boto3
COPY mlflow/start.sh /opt/mlflow/start.sh
COPY mlflow/create-worker-user.py /opt/mlflow/create-worker-user.py
EXPOSE 5000
