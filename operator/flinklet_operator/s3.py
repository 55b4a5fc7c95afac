"""Disposing of savepoints on S3 (or an S3-compatible server) with boto3.

The operator reads the FlinkJob's ``checkpointStorage.s3`` (endpoint, region, path style)
and its credentials Secret, and deletes every object under the savepoint directory's
prefix. boto3 errors are wrapped in
:class:`~flinklet_operator.errors.SavepointDisposalError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from flinklet_operator.errors import SavepointDisposalError
from flinklet_operator.storage import savepoint_directory

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

__all__ = ["S3Access", "S3SavepointStore"]


@dataclass(frozen=True)
class S3Access:
    endpoint: str | None = None
    region: str | None = None
    path_style: bool = False
    access_key: str | None = None
    secret_key: str | None = None


class S3SavepointStore:
    """Deletes ``s3://bucket/.../savepoint-*`` prefixes."""

    def __init__(self, access: S3Access, client: S3Client | None = None) -> None:
        self.access = access
        self._client = client

    def _s3(self) -> S3Client:
        if self._client is None:
            import boto3
            from botocore.config import Config

            options: dict[str, Any] = {
                "config": Config(
                    s3={"addressing_style": "path" if self.access.path_style else "auto"},
                    connect_timeout=3,
                    read_timeout=30,
                    retries={"max_attempts": 3},
                )
            }
            if self.access.endpoint:
                endpoint = self.access.endpoint
                options["endpoint_url"] = endpoint if "://" in endpoint else f"http://{endpoint}"
            if self.access.region:
                options["region_name"] = self.access.region
            if self.access.access_key and self.access.secret_key:
                options["aws_access_key_id"] = self.access.access_key
                options["aws_secret_access_key"] = self.access.secret_key
            self._client = boto3.client("s3", **options)
        return self._client

    def dispose(self, location: str) -> None:
        directory = savepoint_directory(location)
        parsed = urlparse(directory)
        if parsed.scheme not in ("s3", "s3a", "s3p"):
            raise SavepointDisposalError(f"{location!r} is not an s3:// location")
        bucket, prefix = parsed.netloc, parsed.path.lstrip("/") + "/"
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client = self._s3()
            paginator = client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                keys: list[ObjectIdentifierTypeDef] = [
                    {"Key": item["Key"]} for item in page.get("Contents", [])
                ]
                if not keys:
                    continue
                answer = client.delete_objects(
                    Bucket=bucket, Delete={"Objects": keys, "Quiet": True}
                )
                failed = answer.get("Errors", [])
                if failed:
                    raise SavepointDisposalError(
                        f"could not delete {len(failed)} objects of {directory} from S3, e.g. "
                        f"{failed[0].get('Key')}: {failed[0].get('Message')}"
                    )
        except (BotoCoreError, ClientError) as exc:
            raise SavepointDisposalError(
                f"could not delete {directory} from S3: {exc}; check the FlinkJob's "
                "checkpointStorage.s3 settings and credentials Secret"
            ) from exc
