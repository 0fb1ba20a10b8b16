"""Endpoint configurations with production variants, and how an endpoint moves from one to the next.

As on SageMaker, an endpoint serves one endpoint configuration; a configuration lists production
variants, each a deployed model with a weight. Putting another model version behind a live
endpoint, or a champion and a challenger side by side, is a new configuration that the endpoint
is updated to (``InService → Updating → InService``): the old one keeps serving until the new one
is healthy, and a failed update leaves the old one in place with the reason. Changing only the
weights changes the configuration's weights in place (SageMaker's
``UpdateEndpointWeightsAndCapacities``). This module holds the rules of that;
``catalog.endpoint_configs`` keeps the records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


VARIANT_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@dataclass
class VariantPlan:
    """One production variant of a configuration to be: a trained model (as a registry version or not)."""

    name: str
    trained: dict  # the models row
    weight: float
    version: object = None  # registry.ModelVersion or None

    @property
    def label(self) -> str:
        return self.version.label if self.version is not None else f"model {self.trained['name']}"


def variant_name(group: str, version: int) -> str:
    """``subs-v2``: a SageMaker variant name for a registry version."""
    name = re.sub(r"[^a-zA-Z0-9-]+", "-", f"{group}-v{version}").strip("-")[-63:].lstrip("-")
    return name if VARIANT_RE.match(name) else f"v{version}"


def primary(variants: list[dict]) -> dict:
    """The variant with the most traffic (its model is what the endpoint row names)."""
    return max(variants, key=lambda v: v["weight"])
