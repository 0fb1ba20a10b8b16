"""Who is acting: the user a state-changing call runs as, which the catalog's writers record.

``churn_core.access`` sets it around every guarded ``Platform`` call (``acting``); the catalog's writers
(events, new jobs and endpoints, registry decisions and their journal) read it with ``current()``. A context
variable, so two dashboard sessions (threads) acting as two users never see each other's name. Work done by a
detached process (a job driver, an endpoint supervisor) records "" (the system), not a person.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

_ACTOR: ContextVar[str] = ContextVar("churn_actor", default="")


def current() -> str:
    """The acting user's name ("" outside a user's call: a detached process, a repair)."""
    return _ACTOR.get()


@contextmanager
def acting(name: str) -> Iterator[None]:
    token = _ACTOR.set(name)
    try:
        yield
    finally:
        _ACTOR.reset(token)
