"""Buckets and users of the stack's S3 endpoint (moto in MinIO's place), in exactly
``SETUP_ACTIONS`` requests: moto authenticates and authorises every request after those, like
MinIO does. Prints the admin's and the workers' access keys as JSON.

The workers' user gets ``infra/minio/worker-policy.json`` (the DVC bucket only), the same policy
compose's ``minio-buckets`` gives the MinIO user.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3

POLICY = Path(__file__).resolve().parents[1] / "minio" / "worker-policy.json"
SETUP_ACTIONS = 8
ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def main(url: str, region: str, artifacts_bucket: str, dvc_bucket: str) -> None:
    anonymous = {"endpoint_url": url, "region_name": region, "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    s3, iam = boto3.client("s3", **anonymous), boto3.client("iam", **anonymous)
    s3.create_bucket(Bucket=artifacts_bucket)
    s3.create_bucket(Bucket=dvc_bucket)
    keys = {}
    for user, policy in (("admin", ALL), ("funnel-worker", json.loads(POLICY.read_text().replace("DVC_BUCKET", dvc_bucket)))):
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="funnel", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    print(json.dumps(keys))  # noqa: T201


if __name__ == "__main__":
    main(*sys.argv[1:5])
