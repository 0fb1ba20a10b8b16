"""Getting a damaged catalog back: restore the last good backup, or rebuild it from what is on disk.

    from churn_core import catalog_repair
    catalog_repair.diagnose()            # CatalogHealth: ok?, what is wrong, the last backup
    catalog_repair.restore_backup()      # the last good backup, plus what was made after it (found on disk)
    catalog_repair.rebuild()             # every row SQLite can still read, plus what is on disk

Both work on ``CHURN_HOME`` (or the ``home`` given), build the new catalog in a scratch file, keep the damaged
one as ``churn.db.damaged-<time>`` (with its ``-wal``/``-shm``: an old write-ahead log must never be replayed
into the new file), and put the new one in place with a rename, so a running endpoint's supervisor never sees
a half-made catalog. Running endpoints keep serving throughout and find their rows again (same name and uid).

What a rebuild finds on disk (``churn_core.catalog.health`` decides when one is needed):

* **rows SQLite can still read**: with the ``sqlite3`` tool's ``.recover`` when it is installed (it reads
  around damaged pages), otherwise table by table until the first unreadable page;
* **datasets**: ``buckets/<bucket>/datasets/<name>/`` (raw, train and test files and the dataset schema);
* **jobs and models**: ``jobs/<name>/`` (its ``job.json``, log and packed artifacts) and the bucket's
  ``jobs/<name>/output/``: a job with a model is Completed (metrics and hyperparameters from the model's
  own files), a job whose driver still runs is InProgress, any other Failed; a model packed but never
  stored in the bucket (the catalog failed at the end of training) is stored now;
* **registry decisions**: ``registry-journal.jsonl`` (``catalog.journal``), replayed last, so a version
  rejected after the backup stays Rejected, aliases stay where they were moved, and their events return;
* **endpoints**: running supervisors and model servers found by what they are (``endpoint_processes``),
  described by the ``endpoint.json`` their deploy wrote and each update rewrote (configuration, variants
  with their deployed models and weights, generation).

A SHA-256 salvaged from the old catalog is kept as it was recorded; one that had to be taken from a file as
found is marked so in the job's events (deploy checks every artifact against the recorded value).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from churn_core.catalog import health as catalog_health, journal
from churn_core.catalog.disk_scan import DiskScan, RepairReport
from churn_core.catalog.database import Catalog
from churn_core.errors import BackendError, CatalogDamagedError, NotFoundError
from churn_core.storage.private_files import make_dirs
from churn_core.wording import noun, plural



@dataclass
class CatalogHealth:
    path: Path
    ok: bool
    problem: str = ""  # what is wrong, in the product's words ('' when ok)
    message: str = ""  # the full message with what to do
    backup: Path | None = None
    backup_at: float | None = None


def _home(home: Path | str | None) -> Path:
    if home is not None:
        return Path(home).expanduser().resolve()
    from churn_core.config import Settings

    return Settings.from_env().home


def diagnose(home: Path | str | None = None) -> CatalogHealth:
    """Whether ``<home>/churn.db`` opens as a sound catalog, and the last backup."""
    home = _home(home)
    path = home / "churn.db"
    backup = catalog_health.latest_backup(home)
    health = CatalogHealth(path, True, backup=backup[0] if backup else None, backup_at=backup[1] if backup else None)
    try:
        if catalog_health.check_file(path):
            conn = sqlite3.connect(f"file:{catalog_health._quote(path)}?mode=ro", uri=True, timeout=30)
            try:
                verdict = catalog_health.quick_check(conn)
            finally:
                conn.close()
            if verdict != "ok":
                raise catalog_health.damaged(path, f"SQLite's integrity check reports: {verdict}")
    except CatalogDamagedError as exc:
        health.ok, health.problem, health.message = False, exc.problem, str(exc)
    except sqlite3.DatabaseError as exc:
        error = catalog_health.damaged(path, f"SQLite reports: {exc}")
        health.ok, health.problem, health.message = False, error.problem, str(error)
    return health


# ----------------------------------------------------------------------------- the two repairs


def restore_backup(home: Path | str | None = None, bucket: str | None = None) -> RepairReport:
    """Put the last good backup in place, then add what was made after it and drop what is gone (both found
    on disk). Raises NotFoundError when there is no usable backup."""
    home = _home(home)
    found = None
    for name in (catalog_health.LATEST, catalog_health.PREVIOUS):
        candidate = home / catalog_health.BACKUP_DIR / name
        if candidate.is_file() and _sound(candidate):
            found = candidate
            break
    if found is None:
        raise NotFoundError(f"There is no usable backup of the catalog in {home / catalog_health.BACKUP_DIR}. "
                            "Rebuild the catalog from disk instead (churn_core.catalog.repair.rebuild).")
    report = RepairReport("restored", restored_from=found)
    with _scratch(home) as scratch:
        source = sqlite3.connect(f"file:{catalog_health._quote(found)}?mode=ro", uri=True)
        target = sqlite3.connect(scratch)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        catalog = Catalog(scratch)  # brings a backup of an older version up to date
        DiskScan(home, catalog, report, bucket).run(refresh=True)
        _replay(catalog, home, report)
        _event(catalog, f"restored from the backup {found.name}: {report.summary()}")
        report.damaged_copy = _swap_in(home, scratch)
    journal.replay(_reopened(home / "churn.db"), home)  # a decision made in the old file while this ran
    return report


def rebuild(home: Path | str | None = None, bucket: str | None = None) -> RepairReport:
    """A new catalog from every record the old file still gives up, plus what is on disk."""
    home = _home(home)
    path = home / "churn.db"
    report = RepairReport("rebuilt")
    with _scratch(home) as scratch:
        catalog = Catalog(scratch)
        if path.exists() and path.stat().st_size:
            report.salvaged_rows = _salvage(path, scratch, report)
        DiskScan(home, catalog, report, bucket).run(refresh=True)
        _replay(catalog, home, report)
        _event(catalog, f"rebuilt from disk: {report.summary()}")
        report.damaged_copy = _swap_in(home, scratch)
    catalog = _reopened(path)
    journal.replay(catalog, home)  # a decision made in the old file while this ran
    catalog.backup(force=True)  # a good starting point for the next restore
    return report


def _reopened(path: Path, attempts: int = 5) -> Catalog:
    """The catalog just swapped in. A process that still had the old file open removes "churn.db-wal/-shm" by
    name when it closes, which can be the new file's for a moment (SQLite: "disk I/O error"); the new file has
    nothing in its log yet, so opening it again loses nothing. A fault that persists is raised as it is."""
    for attempt in range(1, attempts):
        try:
            return Catalog(path)
        except BackendError:
            time.sleep(0.2 * attempt)
    return Catalog(path)


# ----------------------------------------------------------------------------- file handling


class _scratch:
    """A private folder for the new catalog while it is built (removed afterwards)."""

    def __init__(self, home: Path):
        self.folder = home / catalog_health.BACKUP_DIR / f".repair-{os.getpid()}-{int(time.time() * 1000)}"

    def __enter__(self) -> Path:
        make_dirs(self.folder)
        return self.folder / "churn.db"

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _sound(path: Path) -> bool:
    try:
        conn = sqlite3.connect(f"file:{catalog_health._quote(path)}?mode=ro", uri=True)
        try:
            return catalog_health.quick_check(conn) == "ok"
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def _swap_in(home: Path, scratch: Path) -> Path | None:
    """Keep the old catalog (and its -wal/-shm) as churn.db.damaged-<time>; move the new one in place."""
    conn = sqlite3.connect(scratch)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")  # one self-contained file to move
        if catalog_health.quick_check(conn) != "ok":
            raise BackendError(f"The catalog built in {scratch} failed its own integrity check; nothing was "
                               "replaced. Free some disk space and try again.")
    finally:
        conn.close()
    path = home / "churn.db"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    kept = None
    for suffix in ("", "-wal", "-shm"):
        old = Path(f"{path}{suffix}")
        if old.exists():
            target = Path(f"{path}.damaged-{stamp}{suffix}")
            os.replace(old, target)
            if not suffix:
                kept = target
    os.chmod(scratch, 0o600)
    os.replace(scratch, path)
    return kept


def _replay(catalog: Catalog, home: Path, report: RepairReport) -> None:
    """Every registry decision the journal holds, applied again (none is lost or reverted by a repair)."""
    changed = journal.replay(catalog, home)
    if changed:
        report.notes.append(f"{plural(changed, 'registry decision')} {noun(changed, 'was', 'were')} "
                            f"replayed from {journal.path(home)}.")


def _event(catalog: Catalog, message: str) -> None:
    catalog.event("catalog", "churn.db", message)


# ----------------------------------------------------------------------------- salvage


def _tables(conn: sqlite3.Connection) -> dict[str, list[str]]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                        "AND name NOT LIKE 'sqlite_%'").fetchall()]
    return {n: [c[1] for c in conn.execute(f"PRAGMA table_info({n})").fetchall()] for n in names}


def _recovered_copy(path: Path, folder: Path) -> Path | None:
    """The ``sqlite3`` tool's ``.recover`` of ``path`` loaded into a new file; None without the tool."""
    tool = shutil.which("sqlite3")
    if tool is None:
        return None
    try:
        done = subprocess.run([tool, str(path), ".recover"], capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or not done.stdout:
        return None
    copy = folder / "recovered.db"
    conn = sqlite3.connect(copy)
    try:
        conn.executescript(done.stdout.decode("utf-8", errors="replace"))
    except sqlite3.Error:
        pass  # what loaded before the first bad statement is kept
    finally:
        conn.close()
    return copy


def _salvage(path: Path, scratch: Path, report: RepairReport) -> int:
    """Copy every readable row of the damaged catalog into the new one; how many were copied."""
    sources = []
    recovered = _recovered_copy(path, scratch.parent)
    if recovered is not None:
        sources.append(recovered)
        report.notes.append("Records were read back with SQLite's .recover.")
    sources.append(path)
    target = sqlite3.connect(scratch)
    copied = 0
    try:
        wanted = _tables(target)
        keyed = {t for t in wanted if any(c[5] for c in target.execute(f"PRAGMA table_info({t})").fetchall())}
        for source_path in sources:
            try:
                source = sqlite3.connect(f"file:{catalog_health._quote(source_path)}?mode=ro&immutable=1", uri=True)
                have = _tables(source)
            except sqlite3.DatabaseError:
                continue
            try:
                for table, columns in wanted.items():
                    common = [c for c in columns if c in have.get(table, [])]
                    if not common or table not in keyed:
                        continue  # only rows with a key: INSERT OR IGNORE then never copies one twice
                    cols = ", ".join(common)
                    try:
                        cursor = source.execute(f"SELECT {cols} FROM {table}")
                    except sqlite3.DatabaseError:
                        continue  # this table's first page is unreadable: the others may not be
                    while True:
                        try:
                            row = cursor.fetchone()
                        except sqlite3.DatabaseError:
                            break  # the first unreadable page of this table: keep what came before
                        if row is None:
                            break
                        try:
                            copied += target.execute(
                                f"INSERT OR IGNORE INTO {table} ({cols}) VALUES ({', '.join('?' * len(common))})",
                                row).rowcount
                        except sqlite3.Error:
                            continue  # a garbled row (wrong types, NULL where a value is required)
            except sqlite3.DatabaseError:
                pass
            finally:
                source.close()
            target.commit()  # both sources are read: .recover reads around bad pages, the plain read is exact
    finally:
        target.commit()
        target.close()
    return copied


# ----------------------------------------------------------------------------- what is on disk




__all__ = ["CatalogHealth", "RepairReport", "diagnose", "rebuild", "restore_backup"]
