# The image Prefect workers run funnel's flows in (the repository, installed from constraints.txt).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git procps && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/funnel
COPY pyproject.toml constraints.txt ./
COPY components components
COPY flows flows
RUN pip install --no-cache-dir -c constraints.txt . "prefect==3.9.1" "boto3" "s3fs"
COPY params.yaml dvc.yaml ./
COPY data data
ENV PREFECT_SERVER_ANALYTICS_ENABLED=false
