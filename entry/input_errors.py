"""The one error of a rejected invocation request, and the words its messages use for what was sent.

A leaf module: every module of ``entry/`` may raise ``InvalidInput`` without importing the parser.
"""

from __future__ import annotations

from typing import Any


class InvalidInput(ValueError):
    """An invocation request was rejected; ``status_code`` is the HTTP status to answer with."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def kind_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def short(value: Any, limit: int = 40) -> str:
    """repr() of user input, cut short: error messages never echo a megabyte back."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = " (%d characters)" % len(value) if isinstance(value, str) else ""
    return text[: limit - 1] + "…" + text[-1:] + size


def names(values: list, limit: int = 5) -> str:
    shown = ", ".join(short(str(v)) for v in values[:limit])
    return shown + (" and %d more" % (len(values) - limit) if len(values) > limit else "")


def noun(n: int, word: str) -> str:
    """``feature`` for one, ``features`` otherwise: messages name counts in their number, never ``feature(s)``
    (the container's copy of ``churn_core.wording.noun``, which it cannot import)."""
    return word if n == 1 else word + "s"
