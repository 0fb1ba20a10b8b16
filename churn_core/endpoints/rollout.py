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

from churn_core.catalog.endpoint_configs import config_variants, delete_config, insert_config  # noqa: F401

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


def control_for(store, endpoint: dict, variants: list[dict], generation: int):
    """The local server's control file for a configuration's variants (artifacts in the local bucket)."""
    from churn_core.backends.local.endpoint.control import Control, VariantSpec

    specs = tuple(
        VariantSpec(name=v["variant"], artifact=str(store.path(v["deployed"]["artifact_key"])),
                    sha256=v["deployed"]["artifact_sha256"], weight=float(v["weight"]), model=v["deployed"]["model"],
                    version=f"{v['deployed']['grp']} v{v['deployed']['version']}" if v["deployed"]["grp"] else "",
                    threshold=v["deployed"]["threshold"])
        for v in variants
    )
    return Control(generation=int(generation), variants=specs,
                   capture_percent=float(endpoint.get("capture_percent") or 0), capture_root=str(store.root),
                   endpoint=endpoint["name"])
