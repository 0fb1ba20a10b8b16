"""Everything under ``CHURN_HOME`` is private to its owner: customer data, models, logs, the catalog.

* Every process the product starts (job drivers, training scripts, endpoint supervisors, model
  servers, the warm process and what it forks) runs with umask ``077``: whatever it creates is
  ``rw-------`` / ``rwx------``.
* The dashboard (and a notebook using ``churn_core``) does not change its own umask, which is the
  user's; its writes under the home name their mode instead: folders ``0700`` (:func:`make_dirs`),
  files ``0600`` (:func:`open_append`, ``tempfile.mkstemp``, the catalog).
* :func:`tighten` closes what an older version left open (``churn.db`` and job files were
  ``0644``): it runs when the platform opens the home, on the product's own folders only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
PRODUCT_ENTRIES = ("churn.db", "churn.db-wal", "churn.db-shm", "buckets", "jobs", "endpoints", "backups", "tuning",
                   "monitoring", "transforms")


def set_process_umask() -> None:
    """For the product's own processes (never the dashboard's): everything they create is private."""
    os.umask(UMASK)


def make_dirs(path: Path) -> Path:
    """``mkdir -p`` with every folder it creates ``0700`` (whatever the umask); existing ones are left alone."""
    path = Path(path)
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made by a racing process: its own mode
        folder.chmod(DIR_MODE)  # we made it: a umask cannot have opened it, but may have closed it too far
    return path


def open_append(path: Path) -> int:
    """A descriptor appending to ``path`` (a log), created ``0600`` in a private folder if missing."""
    make_dirs(Path(path).parent)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)


def create_file(path: Path) -> None:
    """Create ``path`` empty with mode ``0600`` unless it exists (the catalog, before SQLite opens it)."""
    make_dirs(Path(path).parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass


def tighten(home: Path) -> int:
    """Remove group and other permissions from the product's files under ``home`` (and from ``home`` itself
    when it holds a catalog, i.e. the product made it); returns how many were changed. Links are not followed."""
    home = Path(home)
    me = os.getuid()
    changed = 0

    def close(path: str, info: os.stat_result) -> None:
        nonlocal changed
        if info.st_uid != me or stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077:
            return
        try:
            os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o077, follow_symlinks=False)
            changed += 1
        except (OSError, NotImplementedError):
            pass

    if (home / "churn.db").exists():
        try:
            close(str(home), home.lstat())
        except OSError:
            pass
    for entry in PRODUCT_ENTRIES:
        top = home / entry
        try:
            info = top.lstat()
        except OSError:
            continue
        close(str(top), info)
        if not stat.S_ISDIR(info.st_mode):
            continue
        for folder, dirs, files in os.walk(top, followlinks=False):
            for name in dirs + files:
                path = os.path.join(folder, name)
                try:
                    close(path, os.lstat(path))
                except OSError:
                    continue
    return changed


def write_text(path: Path, text: str) -> None:
    """Write a small file (a manifest) ``0600``, replacing it whole (a temporary file, then a rename)."""
    path = Path(path)
    make_dirs(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(temp, path)
