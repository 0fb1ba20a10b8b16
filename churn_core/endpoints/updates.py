"""Safe rollout: another version behind a live endpoint, champion/challenger weights, capture changes.

An update is a new endpoint configuration the endpoint moves to (``InService → Updating → InService``);
the old configuration keeps serving until the new one is healthy, and a failed update rolls back.
"""

from __future__ import annotations

from churn_core.catalog import endpoints as records
from churn_core.catalog.endpoint_configs import config_variants
from churn_core.endpoints import rollout
from churn_core.endpoints.service import serving_labels
from churn_core.errors import BackendError, ChurnError, ConflictError, ValidationError
from churn_core.monitoring import capture_bounds
from churn_core.records import Endpoint


class RolloutService:
    def __init__(self, catalog, backend, models, registry, endpoints):
        self.catalog = catalog
        self.backend = backend
        self.models = models
        self.registry = registry
        self.endpoints = endpoints

    def update(self, endpoint: str, group: str, version_or_alias: int | str) -> Endpoint:
        """Put another Approved version behind a live endpoint (all its traffic) without taking it down."""
        version = self.registry.deployable(group, version_or_alias)
        plan = rollout.VariantPlan("AllTraffic", self.models.get(version.model), 1.0, version)
        return self._move(endpoint, [plan])

    def set_variants(self, endpoint: str, variants: list[tuple]) -> Endpoint:
        """Serve several Approved versions side by side with weights; only the weights changed: in place."""
        if not variants:
            raise ValidationError("Give at least one (group, version, weight) to serve.")
        plans, names = [], set()
        for group, version_or_alias, weight in variants:
            weight = float(weight)
            if not (weight >= 0 and weight == weight):
                raise ValidationError(f"A variant's weight is a number ≥ 0 (got {weight!r}).")
            version = self.registry.deployable(group, version_or_alias)
            name = rollout.variant_name(version.group, version.version)
            if name in names:
                raise ValidationError(f"{version.label} is listed twice; give each version once.")
            names.add(name)
            plans.append(rollout.VariantPlan(name, self.models.get(version.model), weight, version))
        if not any(p.weight > 0 for p in plans):
            raise ValidationError("At least one variant needs a weight above 0, or nothing would answer.")
        row = records.endpoint(self.catalog, endpoint)
        current = config_variants(self.catalog, row["config"])
        if sorted(v["variant"] for v in current) == sorted(names) and all(
                next(v for v in current if v["variant"] == p.name)["deployed"]["artifact_sha256"]
                == p.trained["artifact_sha256"] for p in plans):
            return self._set_weights(row, {p.name: p.weight for p in plans})
        return self._move(endpoint, plans)

    def redeploy(self, endpoint: str) -> Endpoint:
        """The same variants and weights as new deployed models, each with the threshold its model (version) has
        now: an update like any other (the old models serve until the new ones are healthy: no failed request)."""
        row = records.endpoint(self.catalog, endpoint)
        plans = [rollout.VariantPlan(v["variant"], self.models.get(v["deployed"]["model"]), float(v["weight"]),
                                     self.registry.get(v["deployed"]["grp"], v["deployed"]["version"])
                                     if v["deployed"]["grp"] else None)
                 for v in config_variants(self.catalog, row["config"])]
        return self._move(endpoint, plans)

    def promote_challenger(self, endpoint: str) -> Endpoint:
        """Make the challenger the champion: it takes the alias and all the traffic; the former champion stops."""
        row = records.endpoint(self.catalog, endpoint)
        current = [v for v in config_variants(self.catalog, row["config"]) if v["deployed"]["grp"]]
        if len(current) < 2:
            raise ConflictError(f"Endpoint {endpoint} serves one version; a challenger needs a second variant "
                                "(set variants with a champion and a challenger first).")
        group = current[0]["deployed"]["grp"]
        challengers = [v for v in current if "challenger" in
                       self.registry.get(v["deployed"]["grp"], v["deployed"]["version"]).aliases]
        challenger = challengers[0] if challengers else min(current, key=lambda v: v["weight"])
        version, group = challenger["deployed"]["version"], challenger["deployed"]["grp"] or group
        moved = self.update(endpoint, group, version)  # refused (a rejection, a failed probe): the aliases stay
        self.registry.set_alias(group, version, "champion")  # the aliases move with the traffic, not before it
        self.registry.clear_alias(group, "challenger")
        return moved

    def set_capture(self, endpoint: str, percent: float, note_capture, max_mb: float | None = None,
                    retention_days: float | None = None) -> Endpoint:
        """Capture ``percent`` % of the endpoint's requests and answers (0 turns capture off at once), within a
        byte budget and a retention (None keeps the endpoint's own; see monitoring.capture_bounds)."""
        percent = float(percent)
        if not 0.0 <= percent <= 100.0:
            raise ValidationError(f"The capture share is a percentage from 0 to 100 (got {percent:g}).")
        self.backend.check_capture(percent)  # e.g. SageMaker samples whole percents only
        max_mb, retention_days = capture_bounds.checked(max_mb, retention_days)
        if (max_mb or retention_days) and not self.backend.bounds_capture:
            raise ValidationError("On SageMaker a capture's size and age are set by an S3 lifecycle rule on the "
                                  "capture/ prefix of the bucket (docs/aws.md), not by set_capture: give only the "
                                  "percentage.")
        row = records.endpoint(self.catalog, endpoint)
        if row["status"] != "InService":
            raise ConflictError(f"Endpoint {endpoint} is {row['status']}; capture can be set on an InService endpoint.")
        if percent:
            note_capture(endpoint, row["model"], percent)
        bounded = dict(row, capture_max_mb=max_mb or row.get("capture_max_mb"),
                       capture_retention_days=retention_days or row.get("capture_retention_days"))
        if not self.backend.capture_by_update:
            self.backend.set_capture(bounded, percent)  # in place, effective when this returns
        uid, before = row.get("uid") or "", float(row.get("capture_percent") or 0)
        records.set_capture_percent(self.catalog, endpoint, uid, percent, max_mb, retention_days)
        if self.backend.capture_by_update:
            # SageMaker: a configuration with the same variants AND the same models (nothing is rebuilt from the
            # registry, so nothing new serves and no approval is asked: capture can always be switched, also
            # on an endpoint whose version was rejected since it went live, e.g. to stop capturing its traffic).
            try:
                return self._move(endpoint, None)
            except ChurnError:
                records.set_capture_percent(self.catalog, endpoint, uid, before)  # the endpoint captures as before
                raise
        return self.endpoints.describe(endpoint)

    def _set_weights(self, row: dict, weights: dict[str, float]) -> Endpoint:
        gaining = [v["deployed"] for v in config_variants(self.catalog, row["config"])
                   if weights.get(v["variant"], 0) > v["weight"]]
        records.check_approval(self.catalog, gaining, self.registry.record_refusal)  # before any traffic moves
        self.backend.set_variant_weights(row, weights)
        records.set_weights(self.catalog, row, weights, self.registry.record_refusal)
        return self.endpoints.describe(row["name"])

    def _move(self, name: str, plans: list | None) -> Endpoint:
        """An update keeps the endpoint's row and its uid (its deploy, folder and processes stay the same): only
        its configuration, generation and pending configuration change, so its supervisor keeps serving."""
        row = records.endpoint(self.catalog, name)
        uid = row.get("uid") or ""
        if row["status"] != "InService":
            raise ConflictError(f"Endpoint {name} is {row['status']}; only an InService endpoint can be updated.")
        generation = int(row.get("generation") or 1) + 1
        old_labels = ", ".join(serving_labels(self.catalog, row["config"]))
        new_labels = ", ".join(f"{p.label} ({p.weight:g})" for p in plans) if plans is not None else \
            f"{old_labels}, capturing {float(row.get('capture_percent') or 0):g} %"
        refuse = self.registry.record_refusal
        config = records.begin_update(self.catalog, row, generation, plans,
                                      f"Updating from {old_labels} to {new_labels}", refuse)
        serving = [d for d in config["deployed"] if plans is not None and any(
            p.weight > 0 and p.trained["name"] == d["model"] for p in plans)]
        try:  # the backend asks again just before the new models take traffic (after its probe)
            fields = self.backend.update_endpoint(self.endpoints.own_row(name, uid), config,
                                                  config_variants(self.catalog, config["name"]),
                                                  check=lambda: records.check_approval(self.catalog, serving, refuse))
        except ConflictError as exc:  # a version was rejected while the update ran: it never served
            records.roll_back_update(self.catalog, name, f"Update to {new_labels} was refused and rolled back: "
                                                         f"{exc} Still serving {old_labels}.", uid)
            raise ConflictError(f"Endpoint {name} was not updated: {exc} It keeps serving {old_labels}.") from None
        except ChurnError as exc:
            records.roll_back_update(self.catalog, name, f"Update to {new_labels} failed and was rolled back: "
                                                         f"{exc}. Still serving {old_labels}.", uid)
            raise BackendError(f"Endpoint {name} was not updated: {exc}. It keeps serving {old_labels}.") from None
        if fields.get("update") == "done":
            refusal = self.endpoints.finish_update(name, uid)
            if refusal:
                raise ConflictError(f"Endpoint {name} was not updated: {refusal} It keeps serving {old_labels}.")
        return self.endpoints.describe(name)
