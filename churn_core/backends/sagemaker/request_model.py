"""The service's limits on one request, checked before it is sent.

botocore validates types, required members and minimums only; the service also refuses values over a
maximum length, count or value and strings outside an enum (its ``service-2.json`` says which). The
product's inputs are checked with words for the user where they are taken (``limits.py``); this is the
net under everything else, so a request the service would refuse is never half-sent (a code package
uploaded, then a 400): it fails here, naming the field and the limit. Patterns are left to the tests
(``tests/service_model_check.py``): they need Java's regular expressions.
"""

from __future__ import annotations


def refusals(shape, value, where: str = "") -> list[str]:
    """What in ``value`` breaks a maximum or an enum of ``shape`` (a botocore Shape); [] when nothing does."""
    where = where or shape.name
    meta = shape.metadata or {}
    kind = shape.type_name
    out: list[str] = []
    if kind == "structure" and isinstance(value, dict):
        for name, member in value.items():
            if name in shape.members:
                out += refusals(shape.members[name], member, f"{where}.{name}")
    elif kind in ("list", "map") and isinstance(value, (list, tuple, dict)):
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"{where} has {len(value)} entries; the service takes at most {meta['max']}")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            out += refusals(shape.value if kind == "map" else shape.member, item, f"{where}[{key!r}]")
    elif kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"{where} is {len(value)} characters long; the service takes at most {meta['max']}")
        if getattr(shape, "enum", None) and value not in shape.enum:
            out.append(f"{where}={value!r} is not one of {', '.join(shape.enum)}")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, (int, float)):
        if "max" in meta and value > meta["max"]:
            out.append(f"{where}={value} is above the service's maximum {meta['max']}")
    return out


def check_request(client, api: str, params: dict) -> list[str]:
    """The refusals for ``client.<api>(**params)``; [] when the client has no model for it."""
    try:
        shape = client.meta.service_model.operation_model(api).input_shape
    except Exception:  # a stub or an unknown operation: nothing to check against
        return []
    return refusals(shape, params) if shape is not None else []
