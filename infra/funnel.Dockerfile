# The image Prefect workers run funnel's flows in (the repository, installed from constraints.txt).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git procps && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/funnel
COPY pyproject.toml constraints.txt ./
COPY components components
COPY flows flows
# the stack extra brings the S3 DVC remote (dvc-s3), boto3 and the PostgreSQL driver
RUN pip install --no-cache-dir -c constraints.txt ".[stack]"
COPY params.yaml dvc.yaml .gitignore ./
COPY .dvc/config .dvc/config
COPY data data
# DVC versions snapshots inside a git repository; the image's own commit is the lineage's git_commit
RUN git init -q && git add -A && git -c user.email=worker@funnel -c user.name=funnel commit -qm "funnel worker image"
ENV PREFECT_SERVER_ANALYTICS_ENABLED=false
