"""Check an invocation with the model's own input rules before it is sent to SageMaker.

In the SageMaker SKLearn container an exception in a handler becomes a 500 ``ModelError`` whose
message depends on the container's version. Running the endpoint's own request checks here
(``entry/request_parser.validate_request``, a pure function of the body, its content type, the
Accept header and the schema the model was trained with) gives the user the same 4xx message the
local endpoint gives, and spends no endpoint time on a request that cannot succeed. Requests
that pass are sent unchanged.
"""

from __future__ import annotations

from churn_core.errors import ValidationError
from churn_core.paths import entry_module


def check_request(body: bytes, content_type: str, accept: str, schema: dict) -> None:
    """Raise ValidationError with the endpoint's own status and message if it would reject ``body``."""
    parser = entry_module("request_parser")
    try:
        parser.validate_request(body, content_type, accept, schema)
    except parser.InvalidInput as exc:
        raise ValidationError(f"The endpoint rejected the request (HTTP {exc.status_code}): {exc.message} "
                              "(checked before sending; nothing was sent to SageMaker)") from None
