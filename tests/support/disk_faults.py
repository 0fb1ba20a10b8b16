"""A disk that refuses writes, for the tests of issue 26, item 9: every write call (``os.open`` for writing,
``open``/``io.open`` in a write mode, ``os.mkdir``) on a path containing ``marker`` fails with ``err``
(ENOSPC: the disk is full; EDQUOT, EROFS, EACCES). Installed with the test's ``monkeypatch``, so it lasts
one test; the disk itself is never filled."""

from __future__ import annotations

import builtins
import errno
import io
import os

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def refuse_writes(monkeypatch, marker, err: int = errno.ENOSPC) -> list[str]:
    """Make writes under ``marker`` (a path or part of one) fail with ``err``; the refused paths are listed."""
    marker = str(marker)
    refused: list[str] = []
    real_os_open, real_open, real_io_open, real_mkdir = os.open, builtins.open, io.open, os.mkdir

    def hit(path) -> bool:
        if isinstance(path, int) or marker not in os.fspath(path if not isinstance(path, bytes) else path.decode()):
            return False
        refused.append(os.fspath(path))
        return True

    def fail(path):
        raise OSError(err, os.strerror(err), os.fspath(path))

    def os_open(path, flags, *args, **kwargs):
        if flags & WRITE_FLAGS and hit(path):
            fail(path)
        return real_os_open(path, flags, *args, **kwargs)

    def wrap(real):
        def opener(file, mode="r", *args, **kwargs):
            if any(c in mode for c in "wax+") and hit(file):
                fail(file)
            return real(file, mode, *args, **kwargs)
        return opener

    def mkdir(path, *args, **kwargs):
        if hit(path):
            fail(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", wrap(real_open))
    monkeypatch.setattr(io, "open", wrap(real_io_open))
    monkeypatch.setattr(os, "mkdir", mkdir)
    return refused


WRITE_ERRORS = {"ENOSPC": errno.ENOSPC, "EDQUOT": errno.EDQUOT, "EROFS": errno.EROFS, "EACCES": errno.EACCES}
ADVICE = {"ENOSPC": "free", "EDQUOT": "quota", "EROFS": "read-only", "EACCES": "permission"}
