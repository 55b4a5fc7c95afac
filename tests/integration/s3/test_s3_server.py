"""The real S3-compatible server (MinIO): object round-trips and write semantics."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from tests.infra.s3server import S3Server

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

pytestmark = pytest.mark.s3


@pytest.fixture
def s3(s3_server: S3Server) -> S3Client:
    return s3_server.client()


@pytest.fixture
def prefix() -> str:
    return f"test-{secrets.token_hex(4)}/"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def test_fixture_values(s3_server: S3Server) -> None:
    assert s3_server.endpoint.startswith("http://127.0.0.1:")
    assert s3_server.access_key and s3_server.secret_key
    env = s3_server.env()
    assert env["AWS_ENDPOINT_URL"] == s3_server.endpoint
    assert env["AWS_ACCESS_KEY_ID"] == s3_server.access_key


def test_put_get_list_delete_round_trip(s3_server: S3Server, s3: S3Client, prefix: str) -> None:
    bucket = s3_server.bucket
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    s3.put_object(
        Bucket=bucket,
        Key=f"{prefix}a/one.txt",
        Body=b"hello",
        ContentType="text/plain",
        Metadata={"checkpoint-id": "7"},
    )
    s3.put_object(Bucket=bucket, Key=f"{prefix}a/two.bin", Body=bytes(range(256)))
    s3.put_object(Bucket=bucket, Key=f"{prefix}b/three.txt", Body=b"")

    got = s3.get_object(Bucket=bucket, Key=f"{prefix}a/one.txt")
    assert got["Body"].read() == b"hello"
    assert got["ContentLength"] == 5
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"checkpoint-id": "7"}
    assert got["ETag"].strip('"') == hashlib.md5(b"hello").hexdigest()
    assert s3.get_object(Bucket=bucket, Key=f"{prefix}a/two.bin")["Body"].read() == bytes(
        range(256)
    )

    ranged = s3.get_object(Bucket=bucket, Key=f"{prefix}a/two.bin", Range="bytes=10-19")
    assert ranged["Body"].read() == bytes(range(10, 20))

    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}a/")
    assert [o["Key"] for o in listed["Contents"]] == [f"{prefix}a/one.txt", f"{prefix}a/two.bin"]
    assert [o["Size"] for o in listed["Contents"]] == [5, 256]

    tree = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
    assert sorted(p["Prefix"] for p in tree["CommonPrefixes"]) == [f"{prefix}a/", f"{prefix}b/"]

    page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=2)
    assert page["KeyCount"] == 2
    assert page["IsTruncated"] is True
    rest = s3.list_objects_v2(
        Bucket=bucket, Prefix=prefix, ContinuationToken=page["NextContinuationToken"]
    )
    assert [o["Key"] for o in rest["Contents"]] == [f"{prefix}b/three.txt"]

    s3.delete_object(Bucket=bucket, Key=f"{prefix}a/one.txt")
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=bucket, Key=f"{prefix}a/one.txt")
    assert _error_code(missing.value) == "NoSuchKey"

    deleted = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": f"{prefix}a/two.bin"}, {"Key": f"{prefix}b/three.txt"}]},
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == [
        f"{prefix}a/two.bin",
        f"{prefix}b/three.txt",
    ]
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 0


def test_overwrite_replaces_content(s3_server: S3Server, s3: S3Client, prefix: str) -> None:
    key = f"{prefix}state"
    first = s3.put_object(Bucket=s3_server.bucket, Key=key, Body=b"v1")
    second = s3.put_object(Bucket=s3_server.bucket, Key=key, Body=b"version-2")
    assert first["ETag"] != second["ETag"]
    got = s3.get_object(Bucket=s3_server.bucket, Key=key)
    assert got["Body"].read() == b"version-2"
    assert got["ETag"] == second["ETag"]
    listed = s3.list_objects_v2(Bucket=s3_server.bucket, Prefix=key)
    assert listed["KeyCount"] == 1


def test_conditional_writes(s3_server: S3Server, s3: S3Client, prefix: str) -> None:
    """If-None-Match: * (create only) and If-Match: <etag> (compare-and-swap) on PutObject."""
    bucket, key = s3_server.bucket, f"{prefix}lock"
    created = s3.put_object(Bucket=bucket, Key=key, Body=b"owner-a", IfNoneMatch="*")

    with pytest.raises(ClientError) as exists:
        s3.put_object(Bucket=bucket, Key=key, Body=b"owner-b", IfNoneMatch="*")
    assert _status(exists.value) == 412
    assert _error_code(exists.value) == "PreconditionFailed"

    swapped = s3.put_object(Bucket=bucket, Key=key, Body=b"owner-c", IfMatch=created["ETag"])
    with pytest.raises(ClientError) as stale:
        s3.put_object(Bucket=bucket, Key=key, Body=b"owner-d", IfMatch=created["ETag"])
    assert _status(stale.value) == 412

    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"owner-c"
    assert got["ETag"] == swapped["ETag"]

    # Conditional reads too.
    with pytest.raises(ClientError) as not_modified:
        s3.get_object(Bucket=bucket, Key=key, IfNoneMatch=swapped["ETag"])
    assert _status(not_modified.value) == 304


def test_multipart_upload(s3_server: S3Server, s3: S3Client, prefix: str) -> None:
    bucket, key = s3_server.bucket, f"{prefix}big"
    part_size = 5 * 1024 * 1024  # S3's minimum for every part but the last
    parts_data = [secrets.token_bytes(part_size), secrets.token_bytes(1234)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    parts: list[CompletedPartTypeDef] = []
    for number, data in enumerate(parts_data, start=1):
        answer = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=data
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ContentLength"] == part_size + 1234
    assert got["Body"].read() == b"".join(parts_data)
    assert got["ETag"].strip('"').endswith("-2")
