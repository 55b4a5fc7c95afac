"""Disposing of savepoints on a real S3-compatible server (MinIO on 127.0.0.1)."""

from __future__ import annotations

import secrets

import pytest

from flinklet_operator.errors import SavepointDisposalError
from flinklet_operator.s3 import S3Access, S3SavepointStore
from tests.infra.s3server import S3Server

pytestmark = pytest.mark.s3


def access(server: S3Server, *, secret: str | None = None) -> S3Access:
    return S3Access(
        endpoint=server.endpoint,
        region=server.region,
        path_style=True,
        access_key=server.access_key,
        secret_key=secret or server.secret_key,
    )


def keys(server: S3Server, prefix: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=server.bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_dispose_deletes_exactly_the_savepoint_directory(s3_server: S3Server) -> None:
    base = f"jobs/{secrets.token_hex(4)}/savepoints"
    client = s3_server.client()
    names = ["savepoint-aaaaaa-000000000001", "savepoint-aaaaaa-0000000000010"]
    for name in names:
        for key in ("_metadata", "op-1/state-0", "op-2/state-0"):
            client.put_object(Bucket=s3_server.bucket, Key=f"{base}/{name}/{key}", Body=b"x")
    store = S3SavepointStore(access(s3_server))
    store.dispose(f"s3://{s3_server.bucket}/{base}/{names[0]}/_metadata")
    assert keys(s3_server, base) == [
        f"{base}/{names[1]}/_metadata",
        f"{base}/{names[1]}/op-1/state-0",
        f"{base}/{names[1]}/op-2/state-0",
    ]
    store.dispose(f"s3://{s3_server.bucket}/{base}/{names[0]}")  # already gone: fine


def test_dispose_refuses_what_is_not_a_savepoint(s3_server: S3Server) -> None:
    store = S3SavepointStore(access(s3_server))
    with pytest.raises(SavepointDisposalError, match="refusing"):
        store.dispose(f"s3://{s3_server.bucket}/jobs")


def test_bad_credentials_are_a_disposal_error(s3_server: S3Server) -> None:
    store = S3SavepointStore(access(s3_server, secret="wrong-secret-key-0000000000"))
    with pytest.raises(SavepointDisposalError, match="credentials Secret"):
        store.dispose(f"s3://{s3_server.bucket}/jobs/savepoints/savepoint-bbbbbb-000000000001")
