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
# DVC versions snapshots inside a git repository (a local one: the image has no .git history).
# The lineage's git_commit is the source commit the image was built from, passed as a build
# argument: docker build --build-arg FUNNEL_GIT_COMMIT=$(git rev-parse HEAD) ...
ARG FUNNEL_GIT_COMMIT=unknown
LABEL org.opencontainers.image.revision=$FUNNEL_GIT_COMMIT
ENV FUNNEL_GIT_COMMIT=$FUNNEL_GIT_COMMIT
RUN git init -q && git add -A && git -c user.email=worker@funnel -c user.name=funnel commit -qm "funnel worker image at $FUNNEL_GIT_COMMIT"
ENV PREFECT_SERVER_ANALYTICS_ENABLED=false
