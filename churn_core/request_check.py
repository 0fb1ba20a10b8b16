"""Check an invocation with the model's own input rules before it is sent to SageMaker.

In the SageMaker SKLearn container an exception in ``input_fn`` becomes a 500 ``ModelError``
whose message depends on the container's version. Running ``entry/train.py``'s own
``input_fn`` and column checks here, against the schema the model was trained with, gives the
user the same 4xx message the local endpoint gives, and spends no endpoint time on a request
that cannot succeed. Requests that pass are sent unchanged.
"""

from __future__ import annotations

import threading

from .errors import ValidationError
from .processes import ENTRY
_loaded: dict = {}
_lock = threading.Lock()


def _entry_module():
    """entry/train.py imported once per version of the file (the dashboard may outlive an edit)."""
    from .serving import load_entry

    version = ENTRY.stat().st_mtime_ns
    with _lock:
        if _loaded.get("version") != version:
            _loaded.update(version=version, module=load_entry(ENTRY))
        return _loaded["module"]


def check_request(body: bytes, content_type: str, accept: str, schema: dict) -> None:
    """Raise ValidationError with the endpoint's own status and message if it would reject ``body``."""
    entry = _entry_module()
    entry._libs()
    try:
        parsed = entry.input_fn(body, content_type)
        entry._build_columns(parsed, entry._compile(schema))
        entry._choose_accept(accept)
    except entry.InvalidInput as exc:
        raise ValidationError(f"The endpoint rejected the request (HTTP {exc.status_code}): {exc.message} "
                              "(checked before sending; nothing was sent to SageMaker)") from None
