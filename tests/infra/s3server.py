"""A real S3-compatible server (MinIO, built by hack/build-k8s.sh) on 127.0.0.1."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tests.infra.binaries import require_binaries
from tests.infra.procs import LOOPBACK, ManagedProcess, free_port, wait_for

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"


class S3Server:
    """MinIO in single-drive mode with one bucket. ``start`` returns once the bucket exists."""

    def __init__(
        self,
        bin_dir: Path,
        run_dir: Path,
        *,
        bucket: str = "flinklet-test",
        startup_timeout: float = 60.0,
    ) -> None:
        self.bin_dir = bin_dir
        self.run_dir = run_dir
        self.bucket = bucket
        self.startup_timeout = startup_timeout
        self.access_key = "flinklet-" + secrets.token_hex(6)
        self.secret_key = secrets.token_hex(20)
        self.region = REGION
        self.port = 0
        self.endpoint = ""
        self.log_path = run_dir / "logs" / "minio.log"
        self._proc: ManagedProcess | None = None

    def start(self) -> None:
        require_binaries(("minio",), self.bin_dir)
        data_dir = self.run_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        console_port = free_port()
        self.endpoint = f"http://{LOOPBACK}:{self.port}"
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            "MINIO_CALLHOME_ENABLE": "off",
            "MINIO_REGION": REGION,
            "HOME": str(self.run_dir),
        }
        self._proc = ManagedProcess(
            "minio",
            [
                str(self.bin_dir / "minio"),
                "server",
                str(data_dir),
                "--address",
                f"{LOOPBACK}:{self.port}",
                "--console-address",
                f"{LOOPBACK}:{console_port}",
                "--certs-dir",
                str(self.run_dir / "certs"),
                "--quiet",
            ],
            self.log_path,
            env=env,
        )
        try:
            self._proc.start()

            def ready() -> bool:
                resp = httpx.get(f"{self.endpoint}/minio/health/ready", timeout=2)
                return resp.status_code == 200

            wait_for(
                "MinIO /minio/health/ready",
                ready,
                timeout=self.startup_timeout,
                check=self._proc.check_alive,
            )
            client = self.client()
            client.create_bucket(Bucket=self.bucket)
            wait_for(
                f"bucket {self.bucket}",
                lambda: client.head_bucket(Bucket=self.bucket) is not None,
                timeout=self.startup_timeout,
                check=self._proc.check_alive,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.alive() else None

    def client(self) -> S3Client:
        """A boto3 S3 client for this server (path-style addressing, SigV4)."""
        import boto3
        from botocore.config import Config

        client: S3Client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )
        return client

    def env(self) -> dict[str, str]:
        """The environment variables an AWS SDK (and flinklet's S3 filesystem) reads."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
        }
