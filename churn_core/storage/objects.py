"""Object storage with S3's shape: a bucket of keys. Locally a folder, on AWS a real bucket.

Keys are always relative (``datasets/telecom/train/train.csv``); the store adds its prefix.
Local writes go to a temporary file first and are renamed into place, so a crash or a full
disk never leaves a half-written object behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from churn_core.errors import BackendError, NotFoundError, ValidationError
from churn_core.storage.disk import disk_error, disk_writes, is_disk_error
from churn_core.storage.private_files import make_dirs


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValidationError(f"Storage key {key!r} is not a safe relative path.")
    return key


def safe_key(key: str) -> bool:
    """True for a relative key that stays inside the bucket (no ``/`` at the start, no ``.`` or ``..`` parts)."""
    try:
        _check_key(key)
    except ValidationError:
        return False
    return True


def _too_large(key: str, size: int, max_bytes: int) -> ValidationError:
    from churn_core.storage.unpack import ArtifactRefused

    return ArtifactRefused(
        f"Object {key} is {size / 1048576:.1f} MiB, over the cap of {max_bytes / 1048576:.0f} MiB for what is "
        "read here (CHURN_MAX_MODEL_MB); it was not read. Retrain the model, or raise the cap if the file is yours."
    )


def _write_failed(exc: OSError, key: str, root: Path) -> BackendError:
    """A DiskError with the advice that fits (a full disk and a read-only folder need different ones)."""
    if is_disk_error(exc):
        return disk_error(exc, f"write {key} to the local store", root)
    return BackendError(f"Could not write {key} to the local store ({exc.strerror or exc}). "
                        f"Check the free disk space and the permissions of {root}.")


class ObjectStore(Protocol):
    bucket: str

    def put_bytes(self, key: str, data: bytes) -> str: ...
    def put_file(self, key: str, path: Path) -> str: ...
    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes: ...
    def download(self, key: str, path: Path) -> None: ...
    def exists(self, key: str) -> bool: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def list(self, prefix: str) -> list[str]: ...
    def sizes(self, prefix: str) -> list[tuple[str, int, float]]: ...  # (key, bytes, last modified)
    def uri(self, key: str) -> str: ...


class LocalObjectStore:
    """``<home>/buckets/<bucket>/<key>``: the local backend's S3."""

    def __init__(self, home: Path, bucket: str):
        self.bucket = bucket
        self.root = Path(home) / "buckets" / bucket

    def path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def uri(self, key: str) -> str:
        return f"file://{self.path(key)}"

    def put_bytes(self, key: str, data: bytes) -> str:
        target = self.path(key)
        tmp = None
        try:
            make_dirs(target.parent)  # 0700: customer data is private whatever the dashboard's umask
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except OSError as exc:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            raise _write_failed(exc, key, self.root) from exc
        return self.uri(key)

    def put_file(self, key: str, path: Path) -> str:
        """Copy a file in (streamed: a large file never sits in memory), atomically like ``put_bytes``."""
        target = self.path(key)
        tmp = None
        try:
            make_dirs(target.parent)  # 0700 like put_bytes: a copied-in file is customer data too
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")  # 0600
            with os.fdopen(fd, "wb") as out, open(path, "rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
            os.replace(tmp, target)
        except OSError as exc:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            if not isinstance(exc, FileNotFoundError) or Path(path).exists():
                raise _write_failed(exc, key, self.root) from exc
            raise NotFoundError(f"The file {path} to store as {key} does not exist.") from None
        return self.uri(key)

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes, read through one descriptor; over ``max_bytes`` it is refused unread."""
        try:
            with open(self.path(key), "rb") as fh:
                if max_bytes is not None:
                    size = os.fstat(fh.fileno()).st_size
                    if size > max_bytes:
                        raise _too_large(key, size, max_bytes)
                    data = fh.read(max_bytes + 1)
                    if len(data) > max_bytes:
                        raise _too_large(key, len(data), max_bytes)
                    return data
                return fh.read()
        except FileNotFoundError:
            raise NotFoundError(f"Object {key} is missing from the local store {self.root}.") from None

    def download(self, key: str, path: Path) -> None:
        try:
            with disk_writes(f"copy {key} from the local store to {path}", Path(path).parent):
                shutil.copyfile(self.path(key), path)
        except FileNotFoundError:
            raise NotFoundError(f"Object {key} is missing from the local store {self.root}.") from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.path(prefix.rstrip("/"))
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith(".part-"))

    def sizes(self, prefix: str) -> list[tuple[str, int, float]]:
        """(key, bytes, last modified) of every object under ``prefix``."""
        found = []
        for key in self.list(prefix):
            try:
                info = self.path(key).stat()
            except OSError:
                continue  # deleted meanwhile
            found.append((key, info.st_size, info.st_mtime))
        return found

    def delete_prefix(self, prefix: str) -> int:
        base = self.path(prefix.rstrip("/"))
        if not base.exists():
            return 0
        count = sum(1 for p in base.rglob("*") if p.is_file())
        shutil.rmtree(base, ignore_errors=True)
        return count
