"""Blob store: files that one node writes and another must read (export zips today).

`[server] blob_url` picks the store:
- empty (the default): the data dir itself — one machine, or nodes that share that folder;
- ``file:///absolute/folder``: a folder every node mounts (NFS and the like);
- ``s3://bucket/prefix?endpoint_url=http://host:9000&region=us-east-1``: any S3-compatible
  object store (AWS S3, MinIO, Ceph, …) through boto3 (`pip install gazelab[s3]`); the
  credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a
  profile, an instance role).

Keys are relative paths such as ``exports/gazelab-….zip``. Model weights and figures live
in the database, so every node already shares them; training snapshots are a per-node cache
rebuilt from the database (trainer.snapshot), so they stay in each node's data dir.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Protocol
from urllib.parse import parse_qs, urlsplit

from gazelab.config import Config, ConfigError

CHUNK = 1 << 20


class BlobStore(Protocol):
    def move_in(self, key: str, path: Path) -> None:
        """Store the file at `path` under `key`, whole or not at all; `path` is gone afterwards."""

    def size(self, key: str) -> int | None:
        """Bytes stored under `key`, or None when there is no such blob."""

    def read_chunks(self, key: str) -> Iterator[bytes]:
        """The blob's bytes in chunks (FileNotFoundError when it is missing)."""

    def local_path(self, key: str) -> Path | None:
        """A path this node can read the blob from directly, if the store has one."""

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""

    def keys(self, prefix: str) -> list[str]:
        """Every key under `prefix` (e.g. "exports/")."""


def _checked(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad blob key {key!r}")
    return key


@dataclass
class FolderStore:
    """Blobs as files under `root` (0600, written to a temp name and renamed)."""
    root: Path

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)

    def move_in(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o600)
        try:
            os.replace(path, target)      # same file system: one rename
        except OSError:
            temp = target.with_name(f".{target.name}.{os.getpid()}.part")
            shutil.copyfile(path, temp)
            os.chmod(temp, 0o600)
            os.replace(temp, target)
            path.unlink()

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def read_chunks(self, key: str) -> Iterator[bytes]:
        with open(self._path(key), "rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        folder = self.root / prefix.rstrip("/")
        if not folder.is_dir():
            return []
        return sorted(f"{prefix.rstrip('/')}/{p.name}" for p in folder.iterdir()
                      if p.is_file() and not p.name.startswith("."))


class S3Store:
    """Blobs as objects in an S3-compatible bucket, under a key prefix."""

    def __init__(self, url: str) -> None:
        try:
            import boto3
        except ImportError:
            raise ConfigError("[server] blob_url is s3://… but boto3 is not installed: "
                              "pip install 'gazelab[s3]'") from None
        parts = urlsplit(url)
        if not parts.netloc:
            raise ConfigError(f"[server] blob_url {url!r}: no bucket (s3://bucket/prefix)")
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.client = boto3.client("s3", endpoint_url=options.get("endpoint_url"),
                                   region_name=options.get("region", "us-east-1"))

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{_checked(key)}" if self.prefix else _checked(key)

    def move_in(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))
        path.unlink()

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def read_chunks(self, key: str) -> Iterator[bytes]:
        from botocore.exceptions import ClientError
        try:
            body: BinaryIO = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            raise FileNotFoundError(key) from exc
        try:
            while chunk := body.read(CHUNK):
                yield chunk
        finally:
            body.close()

    def local_path(self, key: str) -> Path | None:
        return None

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def keys(self, prefix: str) -> list[str]:
        full = self._key(prefix.rstrip("/")) + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            found += [item["Key"][strip:] for item in page.get("Contents", [])]
        return sorted(found)


def blob_store(config: Config) -> BlobStore:
    """The store `[server] blob_url` names (see the module text)."""
    url = config.server.blob_url.strip()
    if not url:
        return FolderStore(config.data_dir)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        path = Path(urlsplit(url).path)
        if not path.is_absolute():
            raise ConfigError(f"[server] blob_url {url!r}: a file:// URL needs an absolute path")
        return FolderStore(path)
    if scheme == "s3":
        return S3Store(url)
    raise ConfigError(f"[server] blob_url {url!r}: use file:///folder or s3://bucket/prefix (or leave it empty)")
