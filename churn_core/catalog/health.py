"""Is the catalog file sound? And a rolling backup of it, so a damaged one can be restored.

Checked every time a process opens the catalog (``db.Catalog``), before anything is written:

* a missing or empty (0-byte) ``churn.db`` is a new catalog only when the home holds nothing else; with
  datasets, jobs or endpoints on disk it is a lost catalog, and starting over would orphan them;
* a file must start with SQLite's header, be a whole number of pages, and as long as the header says;
* ``PRAGMA quick_check`` must answer ``ok`` (every page of every table and index is well formed).

Anything else raises :class:`~churn_core.errors.CatalogDamagedError` with the product's own words:
which file, what is wrong, where the last good backup is, and the two ways back
(``churn_core.catalog.repair.restore_backup`` and ``rebuild``, also on the Settings page). The damaged
file is left exactly as it was. Errors SQLite reports later (``database disk image is malformed``, a
table gone because the file was replaced) become the same error instead of a raw ``sqlite3`` one.

Backups: after a successful write transaction, at most every ``CHURN_CATALOG_BACKUP_SECONDS`` (60),
SQLite's online backup API copies the live catalog to ``<home>/backups/churn-latest.db`` (the one before
is kept as ``churn-previous.db``). A copy is only kept if it passes ``quick_check``, so a damaged catalog
never replaces a good backup.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import struct
import time
from datetime import datetime
from pathlib import Path

from churn_core.errors import CatalogDamagedError
from churn_core.wording import plural

HEADER = b"SQLite format 3\x00"
BACKUP_DIR = "backups"
LATEST = "churn-latest.db"
PREVIOUS = "churn-previous.db"
STATE_FOLDERS = ("jobs", "endpoints")
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26


def backup_every() -> float:
    raw = os.environ.get("CHURN_CATALOG_BACKUP_SECONDS", "").strip()
    try:
        return max(0.0, float(raw)) if raw else 60.0
    except ValueError:
        return 60.0


def backup_path(home: Path) -> Path:
    return Path(home) / BACKUP_DIR / LATEST


def latest_backup(home: Path) -> tuple[Path, float] | None:
    """(path, when it was made) of the newest backup that exists, or None."""
    for name in (LATEST, PREVIOUS):
        path = Path(home) / BACKUP_DIR / name
        try:
            return path, path.stat().st_mtime
        except OSError:
            continue
    return None


def state_on_disk(home: Path) -> list[str]:
    """What the home holds besides the catalog (datasets, jobs, endpoints), shortly described; [] if nothing."""
    home = Path(home)
    found = []
    for bucket in sorted((home / "buckets").glob("*")):
        datasets = [p.name for p in (bucket / "datasets").glob("*") if p.is_dir()]
        if datasets:
            found.append(f"{plural(len(datasets), 'dataset')} in {bucket}")
        jobs = [p.name for p in (bucket / "jobs").glob("*") if p.is_dir()]
        if jobs:
            found.append(f"{plural(len(jobs), 'model folder')} in {bucket / 'jobs'}")
    for folder in STATE_FOLDERS:
        entries = [p for p in (home / folder).glob("*") if p.is_dir()]
        if entries:
            found.append(f"{plural(len(entries), folder[:-1] + ' folder')} in {home / folder}")
    if (home / "registry-journal.jsonl").is_file():
        found.append(f"the registry's journal {home / 'registry-journal.jsonl'}")
    if latest_backup(home):
        found.append(f"a backup of the catalog in {home / BACKUP_DIR}")
    return found


def damaged(path: Path, problem: str) -> CatalogDamagedError:
    """The error for a damaged catalog, saying what happened and what to do, in the product's words."""
    path = Path(path)
    home = path.parent
    backup = latest_backup(home)
    if backup:
        when = datetime.fromtimestamp(backup[1]).strftime("%Y-%m-%d %H:%M:%S")
        restore = (f"restore the last good backup ({backup[0]}, made {when}; anything newer is added back from "
                   f"disk): Settings → 'Restore the backup', or churn_core.catalog.repair.restore_backup('{home}')")
    else:
        restore = "there is no backup of it yet to restore"
    message = (
        f"The catalog {path} is damaged: {problem}. Nothing was changed and nothing was started over: your "
        f"datasets, models and running endpoints are still on disk. To carry on, either {restore}; or rebuild the "
        f"catalog from what is on disk (datasets, jobs' models and logs, running endpoints): Settings → 'Rebuild "
        f"from disk', or churn_core.catalog.repair.rebuild('{home}'). Both keep the damaged file as "
        f"{path.name}.damaged-<time> next to it."
    )
    return CatalogDamagedError(message, str(path), problem)


def check_file(path: Path) -> bool:
    """Raise CatalogDamagedError for a file that is not a sound catalog; True when it exists and has content,
    False when it is missing or empty and the home holds nothing else (a new catalog may be made)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
    if not size:
        state = state_on_disk(path.parent)
        if state:
            what = "it is missing" if size is None else "it is empty (0 bytes)"
            raise damaged(path, f"{what}, but the state folder holds {'; '.join(state)}")
        return False
    with open(path, "rb") as fh:
        head = fh.read(100)
    if not head.startswith(HEADER):
        raise damaged(path, "it does not start with SQLite's file header (it was overwritten or is not a catalog)")
    if len(head) < 100:
        raise damaged(path, f"it is only {size} bytes long, shorter than SQLite's 100-byte header (truncated)")
    page_size = struct.unpack(">H", head[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise damaged(path, f"its header gives an impossible page size ({page_size})")
    if size % page_size:
        time.sleep(0.2)  # a writer extending the file in another process: look again before judging
        size = path.stat().st_size
        if size % page_size:
            raise damaged(path, f"it is {size:,} bytes long, not a whole number of {page_size}-byte pages "
                                "(truncated or cut short)")
    return True


def is_corruption(exc: BaseException) -> bool:
    """An sqlite3 error that means the file is damaged (not busy, not full, not a constraint)."""
    if isinstance(exc, sqlite3.IntegrityError) or not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return True
    text = str(exc).lower()
    return any(w in text for w in ("malformed", "not a database", "no such table", "database corrupt"))


def quick_check(conn: sqlite3.Connection) -> str:
    """'ok', or what ``PRAGMA quick_check`` found wrong (first lines)."""
    rows = [str(next(iter(r.values())) if isinstance(r, dict) else r[0])
            for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    return "ok" if rows == ["ok"] else "; ".join(rows)


# ----------------------------------------------------------------------------- backups


def backup(path: Path, force: bool = False) -> Path | None:
    """Copy the live catalog to ``backups/churn-latest.db`` (online backup API); None when skipped (another
    process is backing up, or it is not due) or when the copy did not pass its integrity check."""
    path = Path(path)
    folder = path.parent / BACKUP_DIR
    latest = folder / LATEST
    if not force:
        try:
            if time.time() - latest.stat().st_mtime < backup_every():
                return None
        except FileNotFoundError:
            pass
    from churn_core.storage.private_files import make_dirs

    make_dirs(folder)
    lock_fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    temp = folder / f".{LATEST}.{os.getpid()}.tmp"
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        temp.unlink(missing_ok=True)
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        source = sqlite3.connect(f"file:{_quote(path)}?mode=ro", uri=True, timeout=30)
        target = sqlite3.connect(temp)
        try:
            source.backup(target)
            verdict = quick_check(target)
        finally:
            target.close()
            source.close()
        if verdict != "ok":
            temp.unlink(missing_ok=True)
            return None  # the live catalog is damaged: the last good backup stays
        if latest.exists():
            os.replace(latest, folder / PREVIOUS)
        os.replace(temp, latest)
        return latest
    except sqlite3.Error:
        temp.unlink(missing_ok=True)
        return None
    finally:
        os.close(lock_fd)


def _quote(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path))


def connect_uri(path: Path, create: bool) -> str:
    """The URI that opens the catalog: read-write only once it exists, so a process never creates an empty
    catalog where a file went missing (it reports it instead)."""
    return f"file:{_quote(path)}?mode={'rwc' if create else 'rw'}"
