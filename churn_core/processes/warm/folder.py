"""The warm process's folder (socket, lock, pid, log, exit records) is the user's own, or it is not used.

The default folder lives in the shared temporary directory (``/tmp/churn-warm-<uid>``), where another
local user could create it first: as a symbolic link to a folder the owner can write, or as an open
folder of their own. So the folder is opened without following links, and used only when it is a real
folder, owned by this user, with no permission for group or others. A folder this function did not
create is never ``chmod``-ed (``CHURN_WARM_DIR`` may point at a shared folder such as ``/tmp``); when
the folder is refused, jobs and endpoints start without the warm process (about 3 s slower each), the
reason is logged once per process, and :func:`status` returns it for the Settings page's checks.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

_log = logging.getLogger("churn_core.processes.warm.client")
_logged: set[str] = set()  # reasons already logged by this process (a start happens often; say it once)


@dataclass(frozen=True)
class FolderCheck:
    folder: Path
    usable: bool
    reason: str = ""  # why it is not used, in the user's words (empty when usable)


def _refuse(folder: Path, why: str) -> FolderCheck:
    reason = (f"The warm-process folder {folder} {why}; jobs and endpoints start without the warm process "
              "(about 3 s slower each). Unset CHURN_WARM_DIR or point it at a folder of your own made with "
              "`mkdir -m 700`, or set CHURN_WARM=0 to silence this.")
    if reason not in _logged:
        _logged.add(reason)
        _log.warning(reason)
    return FolderCheck(folder, False, reason)


def _check_open(fd: int, folder: Path, created: bool) -> str:
    """Why the open folder ``fd`` may not be used ('' when it may); closes a folder we made too open."""
    info = os.fstat(fd)
    if not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if info.st_uid != os.getuid():
        return f"belongs to another user (uid {info.st_uid}), so it could have been planted there"
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        if created:
            os.fchmod(fd, 0o700)  # made just now by this process, opened by a umask: ours to close
            return ""
        return (f"is open to other users (mode {mode:o}); it was not made by the product, so its permissions "
                "are left as they are")
    return ""


def _open_folder(name: str | Path, dir_fd: int | None = None) -> tuple[int, bool]:
    """Create (0700) unless present, then open without following a link; (fd, created)."""
    created = False
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
        created = True
    except FileExistsError:
        pass
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    return os.open(name, flags, dir_fd=dir_fd), created


def check(folder: Path) -> FolderCheck:
    """Make ``folder`` (and its ``exits/`` and ``requests/``) if missing; say whether it is safe to use."""
    folder = Path(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        fd, created = _open_folder(folder)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and folder.is_symlink():
            return _refuse(folder, "is a symbolic link (another user may have planted it to redirect it)")
        if exc.errno == errno.ENOTDIR:
            return _refuse(folder, "is not a folder")
        return _refuse(folder, f"cannot be created or opened ({exc.strerror or exc})")
    try:
        why = _check_open(fd, folder, created)
        if why:
            return _refuse(folder, why)
        for sub in ("exits", "requests"):
            try:
                sub_fd, sub_created = _open_folder(sub, dir_fd=fd)
            except OSError as exc:
                return _refuse(folder, f"has an unusable {sub}/ ({exc.strerror or exc})")
            try:
                why = _check_open(sub_fd, folder / sub, sub_created)
            finally:
                os.close(sub_fd)
            if why:
                return _refuse(folder, f"has a {sub}/ that {why}")
    except OSError as exc:
        return _refuse(folder, f"cannot be checked ({exc.strerror or exc})")
    finally:
        os.close(fd)
    return FolderCheck(folder, True)
