"""Checkpoint storage in S3 (or an S3-compatible server such as MinIO), through boto3.

This is the only module that talks to S3. boto3 is imported on first use, so Flinklet works
without it until a job names an ``s3://`` URI; then a missing boto3 is a
:class:`~flinklet.errors.StorageError` that says ``pip install 'flinklet[s3]'``.

Every boto3/botocore failure is translated at this boundary into a ``StorageError`` that
says what happened and what to do: an unreachable endpoint (fails within seconds: 3 s
connect timeout, 3 attempts), a missing bucket, rejected credentials (naming the access key
id, never the secret), a missing object.

``commit`` completes a checkpoint with a conditional put (``If-None-Match: *``): of two
writers, exactly one succeeds. Servers that do not support conditional puts fall back to
head-then-put, where two writers racing within one round trip could both succeed.

>>> storage = S3CheckpointStorage("bucket", "ckpts", S3Settings(endpoint="http://127.0.0.1:9000"))
>>> storage.uri, storage.child("job/chk-1").location("_metadata")
('s3://bucket/ckpts', 's3://bucket/ckpts/job/chk-1/_metadata')
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flinklet._private.checkpoint.storage import check_key, conflict_error, normalize_prefix
from flinklet._private.state.regions import Part, join_parts
from flinklet.errors import ConfigurationError, StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3CheckpointStorage", "S3Settings"]

DEFAULT_REGION = "us-east-1"
#: S3 deletes at most this many keys per DeleteObjects request.
DELETE_BATCH = 1000

_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "InvalidClientTokenId",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
    }
)
_DENIED_CODES = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled"})
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


def _option(options: Mapping[str, str], *keys: str) -> str | None:
    for key in keys:
        value = options.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _seconds(options: Mapping[str, str], key: str, default: float) -> float:
    raw = _option(options, key)
    if raw is None:
        return default
    from flinklet.common.time import parse_duration_millis

    millis = parse_duration_millis(raw)
    if millis <= 0:
        raise ConfigurationError(f"{key} must be a positive duration, got {raw!r} (e.g. '3 s')")
    return millis / 1000


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3. ``endpoint=None`` means AWS; ``access_key=None`` means boto3's
    default credential chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, the
    instance role)."""

    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    region: str = DEFAULT_REGION
    path_style: bool = False
    connect_timeout: float = 3.0
    read_timeout: float = 60.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if (self.access_key is None) != (self.secret_key is None):
            raise ConfigurationError(
                "s3.access-key and s3.secret-key must be set together (or neither, to use "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an instance role)"
            )
        if self.max_attempts < 1:
            raise ConfigurationError(f"s3.max-attempts must be >= 1, got {self.max_attempts}")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigurationError("s3.connect-timeout and s3.read-timeout must be positive")

    @staticmethod
    def from_options(
        options: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
    ) -> S3Settings:
        """Settings from Flink's keys (``s3.endpoint``, ``s3.access-key``, ``s3.secret-key``,
        ``s3.path.style.access``, ``s3.region``; Flinklet's ``s3.connect-timeout``,
        ``s3.read-timeout``, ``s3.max-attempts``), else the AWS environment variables
        (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``,
        ``AWS_DEFAULT_REGION``; credentials through boto3's chain). An endpoint without a
        scheme gets ``https://``, as in Hadoop's S3A.

        >>> S3Settings.from_options({"s3.endpoint": "minio:9000"}, environ={}).endpoint
        'https://minio:9000'
        """
        opts: Mapping[str, str] = options or {}
        env: Mapping[str, str] = os.environ if environ is None else environ
        endpoint = _option(opts, "s3.endpoint") or _option(
            env, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"
        )
        if endpoint is not None and "://" not in endpoint:
            endpoint = "https://" + endpoint
        path_style_raw = _option(opts, "s3.path.style.access", "s3.path-style-access")
        if path_style_raw is not None and path_style_raw.lower() not in ("true", "false"):
            raise ConfigurationError(
                f"s3.path.style.access must be true or false, got {path_style_raw!r}"
            )
        attempts_raw = _option(opts, "s3.max-attempts")
        try:
            max_attempts = int(attempts_raw) if attempts_raw is not None else 3
        except ValueError:
            raise ConfigurationError(
                f"s3.max-attempts must be a whole number, got {attempts_raw!r}"
            ) from None
        return S3Settings(
            endpoint=endpoint,
            access_key=_option(opts, "s3.access-key", "s3.access.key"),
            secret_key=_option(opts, "s3.secret-key", "s3.secret.key"),
            region=_option(opts, "s3.region", "s3.endpoint.region")
            or _option(env, "AWS_REGION", "AWS_DEFAULT_REGION")
            or DEFAULT_REGION,
            path_style=path_style_raw is not None and path_style_raw.lower() == "true",
            connect_timeout=_seconds(opts, "s3.connect-timeout", 3.0),
            read_timeout=_seconds(opts, "s3.read-timeout", 60.0),
            max_attempts=max_attempts,
        )


def _import_boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise StorageError(
            "checkpoint storage on s3:// needs boto3, which is not installed; run "
            "`pip install 'flinklet[s3]'`"
        ) from exc
    return boto3


class _Connection:
    """One lazily created boto3 client, shared by a storage and all its children."""

    def __init__(self, settings: S3Settings, client: S3Client | None) -> None:
        self.settings = settings
        self._client = client
        self._session: Any = None
        self._lock = threading.Lock()
        self.conditional_put: bool | None = None  # None: not yet known
        self.verified_buckets: set[str] = set()

    @property
    def client(self) -> S3Client:
        with self._lock:
            if self._client is None:
                self._client = self._create()
            return self._client

    def _create(self) -> S3Client:
        boto3 = _import_boto3()
        from botocore.config import Config

        s = self.settings
        extra: dict[str, Any] = {}
        if "request_checksum_calculation" in Config.OPTION_DEFAULTS:
            # Newer botocore adds CRC trailers to every upload; many S3 look-alikes reject
            # them. Checksums are still sent where the API requires them.
            extra["request_checksum_calculation"] = "when_required"
            extra["response_checksum_validation"] = "when_required"
        config = Config(
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
            retries={"total_max_attempts": s.max_attempts, "mode": "standard"},
            s3={"addressing_style": "path" if s.path_style else "auto"},
            signature_version="s3v4",
            **extra,
        )
        self._session = boto3.session.Session(
            aws_access_key_id=s.access_key,
            aws_secret_access_key=s.secret_key,
            region_name=s.region,
        )
        client: S3Client = self._session.client("s3", endpoint_url=s.endpoint, config=config)
        return client

    @property
    def endpoint(self) -> str:
        if self.settings.endpoint:
            return self.settings.endpoint
        return str(self.client.meta.endpoint_url)

    @property
    def access_key_id(self) -> str:
        if self.settings.access_key:
            return self.settings.access_key
        try:
            credentials = self._session.get_credentials() if self._session else None
        except Exception:
            credentials = None
        return str(getattr(credentials, "access_key", None) or "<none found>")


def _error_code(exc: Any) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _http_status(exc: Any) -> int:
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


class S3CheckpointStorage:
    """Checkpoints under ``s3://bucket/prefix``; see the module docstring.

    ``client`` injects a ready boto3 S3 client (tests); otherwise one is made from
    ``settings`` on first use. Objects over 5 GiB are not supported (one PUT each).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        settings: S3Settings | None = None,
        *,
        client: S3Client | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise StorageError(f"invalid S3 bucket name {bucket!r}; write s3://bucket/prefix")
        self._bucket = bucket
        self._prefix = normalize_prefix(prefix)
        self._conn = _Connection(settings or S3Settings(), client)

    @classmethod
    def from_options(
        cls, bucket: str, prefix: str = "", options: Mapping[str, str] | None = None
    ) -> S3CheckpointStorage:
        """A storage configured from Flink's ``s3.*`` keys (see :meth:`S3Settings.from_options`)."""
        return cls(bucket, prefix, S3Settings.from_options(options))

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def uri(self) -> str:
        return f"s3://{self._bucket}" + (f"/{self._prefix[:-1]}" if self._prefix else "")

    def location(self, key: str) -> str:
        return f"s3://{self._bucket}/{self._prefix}{check_key(key)}"

    def __repr__(self) -> str:
        return f"S3CheckpointStorage({self.uri!r}, endpoint={self._conn.settings.endpoint!r})"

    def child(self, prefix: str) -> S3CheckpointStorage:
        view = S3CheckpointStorage.__new__(S3CheckpointStorage)
        view._bucket = self._bucket
        view._prefix = self._prefix + normalize_prefix(prefix)
        view._conn = self._conn
        return view

    # -- the boundary

    @contextmanager
    def _boundary(self, action: str, location: str) -> Iterator[None]:
        """Translate botocore errors raised inside into ``StorageError``."""
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            error = self._translate(exc, action, location)
            if error is None:
                raise
            raise error from exc

    def _translate(self, exc: Exception, action: str, location: str) -> StorageError | None:
        try:
            from botocore import exceptions as bex
        except ImportError:  # pragma: no cover - boto3 imported before any call
            return None
        conn = self._conn
        if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
            return StorageError(
                f"no usable S3 credentials to {action} {location} ({exc}); set s3.access-key "
                "and s3.secret-key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        if isinstance(exc, bex.ConnectionError | bex.HTTPClientError):
            return StorageError(
                f"S3 endpoint {conn.endpoint} is unreachable ({action} {location}: {exc}); "
                "check s3.endpoint and that the server is running"
            )
        if isinstance(exc, bex.ClientError):
            code, status = _error_code(exc), _http_status(exc)
            message = exc.response.get("Error", {}).get("Message") or str(exc)
            if code == "NoSuchBucket":
                return self._missing_bucket()
            if code in _CREDENTIAL_CODES:
                return StorageError(
                    f"S3 at {conn.endpoint} rejected the credentials of access key id "
                    f"'{conn.access_key_id}' ({code}: {message}) while trying to {action} "
                    f"{location}; check s3.access-key and s3.secret-key (or "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and s3.region"
                )
            if code in _DENIED_CODES or status == 403:
                return StorageError(
                    f"S3 denied access key id '{conn.access_key_id}' permission to {action} "
                    f"{location} ({code or status}: {message}); check the credentials, and "
                    f"that they may read, write, list and delete in bucket '{self._bucket}'"
                )
            if code in _MISSING_KEY_CODES or status == 404:
                return self._missing(location)
            return StorageError(
                f"S3 could not {action} {location} ({code or status}: {message}); check the "
                "server's log and the s3.* configuration"
            )
        if isinstance(exc, bex.BotoCoreError):
            return StorageError(
                f"S3 request to {action} {location} at {conn.endpoint} failed ({exc}); check "
                "the s3.* configuration"
            )
        return None

    def _missing_bucket(self) -> StorageError:
        return StorageError(
            f"S3 bucket '{self._bucket}' does not exist at {self._conn.endpoint}; create it, "
            f"or fix the bucket in the checkpoint URI {self.uri}"
        )

    def _missing(self, location: str) -> StorageError:
        return StorageError(
            f"no checkpoint data at {location}: it does not exist; check the "
            "checkpoint/savepoint path (was it deleted, or written to another bucket?)"
        )

    def _object(self, key: str) -> tuple[str, str]:
        check_key(key)
        return self._prefix + key, f"s3://{self._bucket}/{self._prefix}{key}"

    def _check_bucket(self, action: str, location: str) -> None:
        """A HEAD of a missing object and of an object in a missing bucket both answer 404;
        ask about the bucket (once per process and bucket) to tell them apart."""
        if self._bucket in self._conn.verified_buckets:
            return
        with self._boundary(action, location):
            try:
                self._conn.client.head_bucket(Bucket=self._bucket)
            except Exception as exc:
                if _http_status(exc) == 404 or _error_code(exc) in ("NoSuchBucket", "404"):
                    raise self._missing_bucket() from exc
                raise
        self._conn.verified_buckets.add(self._bucket)

    def _head(self, key: str, action: str) -> int | None:
        """The object's size, or None if it does not exist.

        HEAD answers carry no error body, so a 403 cannot tell a wrong secret from a missing
        permission; a one-key listing of the same name (which has a body) tells them apart.
        """
        name, location = self._object(key)
        with self._boundary(action, location):
            try:
                answer = self._conn.client.head_object(Bucket=self._bucket, Key=name)
            except Exception as exc:
                if _http_status(exc) == 403:
                    self._conn.client.list_objects_v2(Bucket=self._bucket, Prefix=name, MaxKeys=1)
                if _http_status(exc) != 404:
                    raise
                self._check_bucket(action, location)
                return None
        self._conn.verified_buckets.add(self._bucket)
        return int(answer["ContentLength"])

    # -- the storage protocol

    def write_parts(self, key: str, parts: Sequence[Part]) -> int:
        return self.write(key, join_parts(parts))

    def write(self, key: str, data: bytes) -> int:
        name, location = self._object(key)
        with self._boundary("write", location):
            self._conn.client.put_object(Bucket=self._bucket, Key=name, Body=bytes(data))
        return len(data)

    def read(self, key: str) -> bytes:
        name, location = self._object(key)
        with self._boundary("read", location):
            answer = self._conn.client.get_object(Bucket=self._bucket, Key=name)
            return answer["Body"].read()

    def exists(self, key: str) -> bool:
        return self._head(key, "look up") is not None

    def size(self, key: str) -> int:
        size = self._head(key, "look up the size of")
        if size is None:
            raise self._missing(self._object(key)[1])
        return size

    def _list_objects(self, prefix: str) -> list[str]:
        full = self._prefix + normalize_prefix(prefix)
        names: list[str] = []
        with self._boundary("list", f"s3://{self._bucket}/{full}"):
            paginator = self._conn.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=full):
                names.extend(obj["Key"] for obj in page.get("Contents", ()) if "Key" in obj)
        return names

    def list(self, prefix: str = "") -> list[str]:
        cut = len(self._prefix)
        return sorted(name[cut:] for name in self._list_objects(prefix))

    def delete(self, key: str) -> None:
        name, location = self._object(key)
        with self._boundary("delete", location):
            self._conn.client.delete_object(Bucket=self._bucket, Key=name)

    def delete_prefix(self, prefix: str) -> None:
        names = self._list_objects(prefix)
        location = f"s3://{self._bucket}/{self._prefix}{normalize_prefix(prefix)}"
        for start in range(0, len(names), DELETE_BATCH):
            batch = names[start : start + DELETE_BATCH]
            with self._boundary("delete", location):
                answer = self._conn.client.delete_objects(
                    Bucket=self._bucket,
                    Delete={"Objects": [{"Key": n} for n in batch], "Quiet": True},
                )
            errors = answer.get("Errors", [])
            if errors:
                shown = ", ".join(
                    f"{e.get('Key')} ({e.get('Code')}: {e.get('Message')})" for e in errors[:3]
                )
                raise StorageError(
                    f"S3 could not delete {len(errors)} of the objects under {location}, e.g. "
                    f"{shown}; check that access key id '{self._conn.access_key_id}' may "
                    "delete in this bucket, then delete them by hand"
                )

    def commit(self, key: str, data: bytes, if_absent: bool = True) -> None:
        name, location = self._object(key)
        body = bytes(data)
        put: Callable[..., Any] = self._conn.client.put_object
        if not if_absent:
            with self._boundary("commit", location):
                put(Bucket=self._bucket, Key=name, Body=body)
            return
        if self._conn.conditional_put is not False:
            with self._boundary("commit", location):
                try:
                    put(Bucket=self._bucket, Key=name, Body=body, IfNoneMatch="*")
                except Exception as exc:
                    if not self._conditional_unsupported(exc):
                        if _error_code(exc) in _CONFLICT_CODES or _http_status(exc) == 412:
                            raise conflict_error(location) from exc
                        raise
                else:
                    self._conn.conditional_put = True
                    return
            self._conn.conditional_put = False
        # The server cannot do conditional puts: head, then put. Two committers racing on
        # the same key within this window could both succeed (the last one wins).
        if self._head(key, "commit") is not None:
            raise conflict_error(location)
        with self._boundary("commit", location):
            put(Bucket=self._bucket, Key=name, Body=body)

    @staticmethod
    def _conditional_unsupported(exc: Exception) -> bool:
        """Whether ``exc`` says If-None-Match on PUT is unsupported (by the server, or by an
        old botocore that does not know the parameter)."""
        if type(exc).__name__ == "ParamValidationError" and "IfNoneMatch" in str(exc):
            return True
        return _error_code(exc) == "NotImplemented" or _http_status(exc) == 501
