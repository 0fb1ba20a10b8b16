"""Write errors are disk errors: a full disk, a quota, a read-only mount or a permission is said as such.

Every place that writes what the product keeps or unpacks (the local bucket, unpacked model artifacts, a
transform's files, a model server's folder) turns an ``OSError`` of that kind into a :class:`DiskError`
naming the folder and what to do, instead of letting it pass for a corrupt file ("retrain the model") or
an unexpected failure. Any other ``OSError`` is left as it is.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from churn_core.errors import DiskError

WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
_WHAT = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
         errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
         errno.EPERM: "the operation is not permitted", errno.EFBIG: "the file is too large for the file system"}


def is_disk_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS


def advice(exc: OSError, where: Path | str) -> str:
    """One piece of advice that fits the failure (a full disk and a read-only folder need different ones)."""
    if exc.errno == errno.ENOSPC:
        return f"Free some disk space on the disk holding {where}"
    if exc.errno == errno.EDQUOT:
        return f"Free some space or ask for a larger disk quota for {where}"
    if exc.errno == errno.EFBIG:
        return f"Free some disk space, or move {where} to a file system that allows large files"
    return (f"{where} cannot be written by this user: check its permissions (or whether it is mounted "
            "read-only)")


def disk_error(exc: OSError, doing: str, where: Path | str) -> DiskError:
    what = _WHAT.get(exc.errno or 0, exc.strerror or str(exc))
    return DiskError(f"Could not {doing}: {what} ({exc.strerror or exc}). {advice(exc, where)}, then try again; "
                     "nothing half-written was kept.")


@contextmanager
def disk_writes(doing: str, where: Path | str) -> Iterator[None]:
    """Inside it, a write error of the disk becomes a DiskError saying what could not be done and what to do."""
    try:
        yield
    except OSError as exc:
        if is_disk_error(exc):
            raise disk_error(exc, doing, where) from exc
        raise
