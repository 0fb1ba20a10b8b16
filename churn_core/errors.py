"""One family of exceptions for every failure a user can cause.

Pages catch ``ChurnError`` and show ``str(err)``: the message is written for the
analyst (what was wrong, what to do), never a stack trace.
"""


class ChurnError(Exception):
    """A failure the user can act on. ``str()`` is the user-facing message."""


class ValidationError(ChurnError):
    """Input (a file, a name, a hyperparameter, a payload) was rejected before anything was stored."""


class NotFoundError(ChurnError):
    """The named dataset, job, model or endpoint does not exist."""


class ConflictError(ChurnError):
    """The name is taken or the object is in a state that forbids the action."""


class BackendError(ChurnError):
    """The backend (local processes or AWS) failed; the message says what to do."""


class DiskError(BackendError):
    """A write failed for a reason of the disk, not of the data: full (ENOSPC), over quota (EDQUOT), read-only
    (EROFS) or not permitted (EACCES, EPERM). The message names the folder and what to do (free space, check
    permissions); nothing half-written is kept, so the same action works once that is fixed."""


class CatalogDamagedError(BackendError):
    """The catalog file (``churn.db``) is damaged or missing while state exists on disk. Nothing was changed;
    the message says which file, where the last backup is, and how to restore or rebuild it."""

    def __init__(self, message: str, path: str = "", problem: str = ""):
        super().__init__(message)
        self.path = path
        self.problem = problem


class PermissionDenied(ChurnError):
    """The acting user's roles do not allow the action (or four-eyes forbids it); the message names the role
    needed and who grants it."""
