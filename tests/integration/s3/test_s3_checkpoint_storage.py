"""S3 checkpoint storage against a real S3-compatible server (MinIO on 127.0.0.1): the same
behavioural contract as the filesystem storage, then conditional commits, pagination and
batched deletes, and the errors users meet (dead endpoint, missing bucket, bad credentials).
"""

from __future__ import annotations

import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from flinklet._private.checkpoint.s3 import S3CheckpointStorage
from flinklet._private.checkpoint.storage import (
    CheckpointStorage,
    FileSystemCheckpointStorage,
    storage_for,
)
from flinklet.errors import StorageError
from tests.infra.s3server import S3Server
from tests.unit.checkpoint.test_storage_memory_fs import StorageContract

pytestmark = pytest.mark.s3


def _options(server: S3Server, **overrides: str) -> dict[str, str]:
    options = {
        "s3.endpoint": server.endpoint,
        "s3.access-key": server.access_key,
        "s3.secret-key": server.secret_key,
        "s3.path.style.access": "true",
        "s3.region": server.region,
    }
    options.update(overrides)
    return options


def _fresh_prefix() -> str:
    return f"ckpt-test-{secrets.token_hex(4)}"


@pytest.fixture(params=["filesystem", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> CheckpointStorage:
    if request.param == "filesystem":
        return FileSystemCheckpointStorage(tmp_path / "ckpts")
    server: S3Server = request.getfixturevalue("s3_server")
    return storage_for(f"s3://{server.bucket}/{_fresh_prefix()}", _options(server))


@pytest.fixture
def storage_options(request: pytest.FixtureRequest) -> dict[str, str]:
    server: S3Server = request.getfixturevalue("s3_server")
    return _options(server)


class TestS3StorageContract(StorageContract):
    """The contract over the filesystem storage and S3, side by side."""


# ----------------------------------------------------------------------------- helpers


def _counting_client(server: S3Server, counts: Counter[str]) -> Any:
    """A boto3 client for the server that counts the API calls it makes."""
    client = server.client()

    def count(model: Any, **_: Any) -> None:
        counts[model.name] += 1

    client.meta.events.register("before-call.s3", count)
    return client


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


OPERATIONS: dict[str, Callable[[CheckpointStorage], object]] = {
    "write": lambda s: s.write("job/chk-1/state", b"x"),
    "read": lambda s: s.read("job/chk-1/state"),
    "exists": lambda s: s.exists("job/chk-1/state"),
    "list": lambda s: s.list("job"),
    "commit": lambda s: s.commit("job/chk-1/_metadata", b"m"),
    "delete_prefix": lambda s: s.delete_prefix("job"),
}


# ----------------------------------------------------------------------------- commits


def test_conditional_commit_has_one_winner_across_clients(s3_server: S3Server) -> None:
    uri = f"s3://{s3_server.bucket}/{_fresh_prefix()}"
    first = storage_for(uri, _options(s3_server))
    second = storage_for(uri, _options(s3_server))  # another JobManager: its own client
    first.commit("job/chk-1/_metadata", b"from the first")
    with pytest.raises(StorageError) as conflict:
        second.commit("job/chk-1/_metadata", b"from the second")
    assert f"{uri}/job/chk-1/_metadata" in str(conflict.value)
    assert "already exists" in str(conflict.value)
    assert second.read("job/chk-1/_metadata") == b"from the first"


def test_commit_falls_back_to_head_then_put_without_conditional_puts(
    s3_server: S3Server,
) -> None:
    client = s3_server.client()
    refused: list[str] = []

    class Answer:
        status_code = 501

    def refuse_conditional_puts(params: dict[str, Any], **_: Any) -> Any:
        if "If-None-Match" in params.get("headers", {}):
            refused.append(params["url_path"])
            error = {"Code": "NotImplemented", "Message": "conditional PUT not supported"}
            return Answer(), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 501}}
        return None

    client.meta.events.register("before-call.s3.PutObject", refuse_conditional_puts)
    storage = S3CheckpointStorage(s3_server.bucket, _fresh_prefix(), client=client)
    storage.commit("chk-1/_metadata", b"first")
    with pytest.raises(StorageError, match="already exists"):
        storage.commit("chk-1/_metadata", b"second")
    storage.commit("chk-2/_metadata", b"third")
    assert [storage.read(f"chk-{n}/_metadata") for n in (1, 2)] == [b"first", b"third"]
    assert len(refused) == 1  # learnt once, then head-then-put


# ----------------------------------------------------------------------------- paging


def test_list_paginates_and_delete_prefix_deletes_in_batches(s3_server: S3Server) -> None:
    counts: Counter[str] = Counter()
    storage = S3CheckpointStorage(
        s3_server.bucket, _fresh_prefix(), client=_counting_client(s3_server, counts)
    )
    keys = [f"job/shared/{n:05d}" for n in range(1005)]
    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(lambda k: storage.write(k, b"s"), keys)) == 1005
    storage.write("job-other/keep", b"k")

    assert storage.list("job") == keys
    assert counts["ListObjectsV2"] == 2  # 1000 keys per page

    counts.clear()
    storage.delete_prefix("job")
    assert counts["DeleteObjects"] == 2  # 1000 keys per request
    assert storage.list() == ["job-other/keep"]


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_an_unreachable_endpoint_fails_within_seconds(operation: str) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    storage = storage_for(
        "s3://bucket/prefix",
        {"s3.endpoint": endpoint, "s3.access-key": "k", "s3.secret-key": "s"},
    )
    started = time.monotonic()
    with pytest.raises(StorageError) as unreachable:
        OPERATIONS[operation](storage)
    assert time.monotonic() - started < 10
    message = str(unreachable.value)
    assert message.startswith(f"S3 endpoint {endpoint} is unreachable (")
    assert message.endswith("; check s3.endpoint and that the server is running")


def test_a_blackholed_endpoint_gives_up_after_the_configured_timeouts() -> None:
    # A listening socket that never accepts: once its backlog is full, connections hang.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
        options = {
            "s3.endpoint": endpoint,
            "s3.access-key": "k",
            "s3.secret-key": "s",
            "s3.connect-timeout": "1 s",
            "s3.read-timeout": "1 s",
            "s3.max-attempts": "2",
        }
        started = time.monotonic()
        with pytest.raises(StorageError) as unreachable:
            storage_for("s3://bucket/prefix", options).read("x")
        elapsed = time.monotonic() - started
    # 2 attempts x 1 s, plus at most 2 s of backoff, plus slack for a loaded machine
    assert elapsed < 7
    assert str(unreachable.value).startswith(f"S3 endpoint {endpoint} is unreachable (")


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_missing_bucket_is_named(s3_server: S3Server, operation: str) -> None:
    storage = storage_for("s3://flinklet-no-such-bucket/prefix", _options(s3_server))
    with pytest.raises(StorageError) as missing:
        OPERATIONS[operation](storage)
    assert "S3 bucket 'flinklet-no-such-bucket' does not exist" in str(missing.value)
    assert s3_server.endpoint in str(missing.value)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_wrong_secret_names_the_access_key_id_but_never_the_secret(
    s3_server: S3Server, operation: str
) -> None:
    wrong_secret = "wrong-" + secrets.token_hex(8)
    storage = storage_for(
        f"s3://{s3_server.bucket}/{_fresh_prefix()}",
        _options(s3_server, **{"s3.secret-key": wrong_secret}),
    )
    with pytest.raises(StorageError) as rejected:
        OPERATIONS[operation](storage)
    message = str(rejected.value)
    assert f"access key id '{s3_server.access_key}'" in message
    assert "check s3.access-key and s3.secret-key" in message
    assert wrong_secret not in message
    assert s3_server.secret_key not in message


def test_an_unknown_access_key_id_is_named(s3_server: S3Server) -> None:
    storage = storage_for(
        f"s3://{s3_server.bucket}/{_fresh_prefix()}",
        _options(s3_server, **{"s3.access-key": "nobody-knows-me"}),
    )
    with pytest.raises(StorageError) as rejected:
        storage.write("k", b"x")
    assert "access key id 'nobody-knows-me'" in str(rejected.value)
    assert "InvalidAccessKeyId" in str(rejected.value)


# ----------------------------------------------------------------------------- config


def test_the_aws_environment_configures_storage_without_options(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    storage = storage_for(f"s3://{s3_server.bucket}/{_fresh_prefix()}")
    storage.commit("job/chk-1/_metadata", b"from the environment")
    assert storage.read("job/chk-1/_metadata") == b"from the environment"


def test_checkpoints_written_to_s3_are_visible_to_plain_s3_clients(
    s3_server: S3Server,
) -> None:
    prefix = _fresh_prefix()
    storage = storage_for(f"s3://{s3_server.bucket}/{prefix}", _options(s3_server))
    storage.child("job/chk-3").commit("_metadata", b"m")
    answer = s3_server.client().get_object(
        Bucket=s3_server.bucket, Key=f"{prefix}/job/chk-3/_metadata"
    )
    assert answer["Body"].read() == b"m"
