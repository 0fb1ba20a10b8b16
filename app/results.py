"""Results that belong to the inputs on screen.

A page keeps a result in session state together with a fingerprint of everything that produced
it (the file's bytes, the endpoint, the model, the form's values). ``shown`` hands the result back
only while the inputs on screen still have that fingerprint; the moment any of them changes the
result is dropped, and ``run`` drops it before trying again, so a failed run never leaves an
older result under its error message.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, TypeVar

import streamlit as st

T = TypeVar("T")
_PREFIX = "_result_"


def fingerprint(*parts: Any) -> str:
    """SHA-256 over the parts: bytes as they are, anything else as canonical JSON (or its repr)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, (bytes, bytearray, memoryview)):
            data = bytes(part)
        else:
            data = json.dumps(part, sort_keys=True, default=repr).encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def shown(slot: str, inputs: str | None) -> Any | None:
    """The result kept in ``slot`` if it was made from ``inputs``; otherwise it is forgotten and None."""
    kept = st.session_state.get(_PREFIX + slot)
    if kept is None:
        return None
    if inputs is None or kept[0] != inputs:
        st.session_state.pop(_PREFIX + slot, None)
        return None
    return kept[1]


def held(slot: str) -> bool:
    """True while a result is kept in ``slot`` (whatever inputs it was made from)."""
    return _PREFIX + slot in st.session_state


def keep(slot: str, inputs: str, result: Any) -> None:
    st.session_state[_PREFIX + slot] = (inputs, result)


def forget(slot: str) -> None:
    st.session_state.pop(_PREFIX + slot, None)


def run(slot: str, inputs: str, fn: Callable[..., T | None], *args: Any, **kwargs: Any) -> T | None:
    """Forget the old result, call ``fn`` (a page action that shows its own error and returns None on
    failure, like ``app.service.attempt``), and keep what it returns for ``inputs``."""
    forget(slot)
    result = fn(*args, **kwargs)
    if result is not None:
        keep(slot, inputs, result)
    return result
