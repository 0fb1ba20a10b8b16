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
