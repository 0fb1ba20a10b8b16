"""Endpoints: deploy a model (model → endpoint config → endpoint, as on SageMaker), read, invoke, delete."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable

from churn_core.catalog import endpoints as records
from churn_core.catalog.endpoint_configs import config_variants
from churn_core.decisions import campaign
from churn_core.endpoints.scoring import BatchResult, encode_payload, score_frame
from churn_core.errors import BackendError, ChurnError, ConflictError, NotFoundError, ValidationError
from churn_core.names import check_name, derived_name
from churn_core.records import ENDPOINT_ACTIVE, Endpoint


def _count_between(value, low: int, high: int) -> bool:
    """A whole number in [low, high]: NaN, ±inf, text and bools are not (the range is checked before int())."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool) and low <= number <= high and number == int(number)


def serving_labels(catalog, config: str) -> list[str]:
    return [f"{v['deployed']['grp']} v{v['deployed']['version']}" if v["deployed"]["grp"]
            else f"model {v['deployed']['model']}" for v in config_variants(catalog, config)]


class EndpointService:
    def __init__(self, catalog, backend, settings, models, registry=None):
        self.catalog = catalog
        self.backend = backend
        self.settings = settings
        self.models = models
        self.registry = registry
        # the registry's approval rule, asked again where a deploy or an update commits
        self.refuse: records.Refusal | None = registry.record_refusal if registry is not None else None

    # ---- deploy ----------------------------------------------------------------------------
    def deploy_model(self, model: str, endpoint_name: str, instance_type: str | None, instance_count: int,
                     wait: bool, timeout: float) -> Endpoint:
        """A job's model (as the version the registry says must serve it, if any) behind a new endpoint."""
        check_name(endpoint_name, "endpoint name")  # before anything is looked up
        trained = self.models.get(model)
        version = self.registry.version_to_deploy(trained["name"])
        return self.deploy(trained, endpoint_name, instance_type, instance_count, wait, timeout, version)

    def deploy_version(self, group: str, version_or_alias: int | str, endpoint_name: str,
                       instance_type: str | None, instance_count: int, wait: bool, timeout: float) -> Endpoint:
        """An Approved registry version (by number or alias) behind a new endpoint."""
        check_name(endpoint_name, "endpoint name")
        version = self.registry.deployable(group, version_or_alias)
        trained = self.models.get(version.model)
        return self.deploy(trained, endpoint_name, instance_type, instance_count, wait, timeout, version)

    def deploy(self, trained: dict, endpoint_name: str, instance_type: str | None, instance_count: int,
               wait: bool, timeout: float, version=None) -> Endpoint:
        """A trained model (as registry ``version``, when given) behind a new endpoint: Creating → InService."""
        check_name(endpoint_name, "endpoint name")
        instance_type = instance_type or self.settings.endpoint_instance_type
        if not _count_between(instance_count, 1, 8):
            raise ValidationError("Instance count must be a whole number between 1 and 8 (each instance is a worker "
                                  f"process locally); got {instance_count!r}.")
        now = time.time()
        deployed = {
            "name": derived_name(endpoint_name, "-model"), "model": trained["name"],
            "artifact_key": trained["artifact_key"], "artifact_sha256": trained["artifact_sha256"], "created_at": now,
            "grp": version.group if version else "", "version": version.version if version else None,
            "version_arn": version.arn if version else "",
            "threshold": version.threshold if version else trained.get("threshold"),
        }
        config = {"name": derived_name(endpoint_name, "-config"), "deployed_model": deployed["name"],
                  "instance_type": instance_type, "instance_count": int(instance_count), "created_at": now}
        row = {
            "name": endpoint_name, "backend": self.backend.name, "config": config["name"], "model": trained["name"],
            "status": "Creating", "instance_type": instance_type, "instance_count": int(instance_count),
            "created_at": now, "updated_at": now,
            "uid": uuid.uuid4().hex,  # this deploy's own: a later deploy of the name never takes its processes
        }
        served = f"{version.label} (model {trained['name']})" if version else f"model {trained['name']}"
        records.create(self.catalog, deployed, config, row, version, served, self.refuse)
        uid = row["uid"]
        try:
            fields = self.backend.create_endpoint(self.own_row(endpoint_name, uid), config, deployed)
        except Exception as exc:
            gone = records.own_endpoint(self.catalog, endpoint_name, uid)
            if gone is None or gone["status"] == "Deleting":  # a delete took its folder from under it
                raise ConflictError(
                    f"Endpoint {endpoint_name!r} was deleted by another session while it was being deployed. "
                    "Deploy it again if you still want it.") from None
            records.forget(self.catalog, endpoint_name, f"deploy failed and was rolled back: {exc}", uid)
            if isinstance(exc, ChurnError):
                raise
            raise BackendError(f"Could not deploy {endpoint_name}: {exc}") from exc
        records.update_own(self.catalog, endpoint_name, uid, **(fields or {}))
        if wait:
            return self.wait(endpoint_name, timeout, uid)
        return self.endpoint(self.own_row(endpoint_name, uid))

    def own_row(self, name: str, uid: str) -> dict:
        """The endpoint row this deploy made; ConflictError if another session deleted or replaced it."""
        row = records.own_endpoint(self.catalog, name, uid)
        if row is None:
            raise ConflictError(
                f"Endpoint {name!r} was deleted (or deleted and deployed again) by another session while it was "
                "being deployed. Deploy it again if you still want it."
            )
        return row

    def wait(self, name: str, timeout: float = 120.0, uid: str | None = None) -> Endpoint:
        """Poll until the endpoint leaves Creating (or ``timeout``); ConflictError if it is deleted meanwhile."""
        deadline = time.monotonic() + timeout
        if uid is None:
            uid = records.endpoint(self.catalog, name).get("uid") or ""
        while True:
            ep = self.endpoint(self.own_row(name, uid))
            if ep.status != "Creating" or time.monotonic() > deadline:
                return ep
            time.sleep(self.backend.poll_interval)

    def finish_update(self, name: str, uid: str) -> str:
        """Record that the endpoint serves its pending configuration, unless a version it would serve was rejected
        meanwhile (read where it commits): then the old models are put back in service and the reason returned."""
        before = records.own_endpoint(self.catalog, name, uid)
        refusal = records.finish_update(self.catalog, name, uid, self.backend.retire_config, self.refuse)
        if refusal and before is not None:
            self.backend.restore_serving(self.own_row(name, uid), before["config"],
                                         config_variants(self.catalog, before["config"]))
        return refusal

    # ---- read --------------------------------------------------------------------------------
    def row(self, name: str) -> dict:
        return records.endpoint(self.catalog, name)

    def describe(self, name: str) -> Endpoint:
        return self.endpoint(records.endpoint(self.catalog, name))

    def endpoint(self, row: dict) -> Endpoint:
        """The endpoint as it is now: a finished or failed update settled, an active endpoint reconciled."""
        if row["status"] == "Updating" and row.get("pending_config"):
            outcome, reason = self.backend.update_outcome(row)
            uid = row.get("uid") or ""
            if outcome == "done":
                self.finish_update(row["name"], uid)
            elif outcome == "failed":
                still = ", ".join(serving_labels(self.catalog, row["config"]))
                records.roll_back_update(self.catalog, row["name"], f"The update failed and was rolled back: "
                                                                    f"{reason}. Still serving {still}.", uid)
            row = records.endpoint(self.catalog, row["name"])
        elif row["status"] in ENDPOINT_ACTIVE:
            fields = self.backend.refresh_endpoint(row)
            if fields:
                records.update(self.catalog, row["name"], **fields, updated_at=time.time())
            row = records.endpoint(self.catalog, row["name"])
        stats = self.backend.endpoint_stats(row) if row["status"] in ("InService", "Updating") else {}
        per_variant = stats.get("variants") or {}
        variants = [{"variant": v["variant"], "weight": v["weight"], "model": v["deployed"]["model"],
                     "version": f"{v['deployed']['grp']} v{v['deployed']['version']}" if v["deployed"]["grp"] else "",
                     "threshold": v["deployed"]["threshold"], "labels_at": self.deployed_threshold(v["deployed"]),
                     "stats": per_variant.get(v["variant"], {})}
                    for v in config_variants(self.catalog, row["config"])]
        return Endpoint.from_row(row, stats, variants)

    def names(self) -> list[str]:
        """Endpoint names, newest first, straight from the catalog (no reconciliation: cheap for pickers)."""
        return records.endpoint_names(self.catalog)

    def list(self) -> list[Endpoint]:
        return [self.endpoint(r) for r in records.endpoints(self.catalog)]

    def log(self, name: str, lines: int = 200) -> str:
        return self.backend.endpoint_log(records.endpoint(self.catalog, name), lines)

    def traffic(self, name: str):
        """Invocations, errors and mean latency per minute of an endpoint (a DataFrame, oldest first)."""
        import pandas as pd

        rows = self.backend.endpoint_traffic(records.endpoint(self.catalog, name))
        frame = pd.DataFrame(rows, columns=["minute", "invocations", "errors", "latency_ms"])
        frame["minute"] = pd.to_datetime(frame["minute"], unit="s", utc=True)
        return frame

    # ---- invoke ------------------------------------------------------------------------------
    def invoke(self, name: str, payload: Any, content_type: str = "application/json",
               accept: str = "application/json") -> Any:
        """Send a request as the seed did; returns the decoded JSON (or text for CSV answers)."""
        return self.answer(name, payload, content_type, accept)[0]

    def answer(self, name: str, payload: Any, content_type: str = "application/json",
               accept: str = "application/json") -> tuple[Any, str]:
        """``invoke``'s answer and the production variant that gave it (SageMaker's InvokedProductionVariant)."""
        row = records.endpoint(self.catalog, name)
        body = encode_payload(payload, content_type)
        if self.backend.precheck_requests:
            self._check_request(row, body, content_type, accept)
        status, answer, answer_type, variant = self.backend.invoke(row, body, content_type, accept)
        text = answer.decode("utf-8", errors="replace")
        if status >= 400:
            try:
                message = json.loads(text).get("error", text)
            except (ValueError, AttributeError):
                message = text or f"HTTP {status}"
            raise ValidationError(f"The endpoint rejected the request (HTTP {status}): {message}")
        return (json.loads(text) if "json" in (answer_type or accept) else text), variant

    def variant_thresholds(self, name: str) -> dict[str, float]:
        """The threshold each production variant of the endpoint labels at (its deployed model's: the one it was
        deployed with, else its schema's), by variant name; ``""``: the endpoint's main model's, for an answer that
        names no variant. A variant of a pending update's configuration counts when the current one lacks it."""
        row = records.endpoint(self.catalog, name)
        out, main = {}, None
        for config in (row.get("pending_config"), row["config"]):
            for v in config_variants(self.catalog, config) if config else []:
                out[v["variant"]] = self.deployed_threshold(v["deployed"])
                main = v if config == row["config"] and (main is None or v["weight"] > main["weight"]) else main
        out[""] = out[main["variant"]] if main is not None else self.models.threshold(row["model"])
        return out

    def deployed_threshold(self, deployed: dict) -> float:
        """What a deployed model labels at: the threshold it was deployed with, else its schema's (0.5)."""
        if deployed.get("threshold") is not None:
            return float(deployed["threshold"])
        try:
            return float(self.models.schema(deployed["model"]).get("threshold", 0.5))
        except ChurnError:  # its model's record or artifact is gone: the container's own default
            return 0.5

    def _check_request(self, row: dict, body: bytes, content_type: str, accept: str) -> None:
        from churn_core.endpoints.request_check import check_request

        try:
            schema = self.models.schema(row["model"])
        except ChurnError:
            return  # no schema to check against (model record or artifact gone): let the endpoint decide
        check_request(body, content_type, accept, schema)

    def score_customer(self, endpoint: str, record: dict, reasons: int = 5) -> dict:
        """One customer with its top ``reasons``: the prediction, the production variant that answered, the risk
        band at that variant's threshold, and the reasons (None, with ``reasons_note`` saying why, when the
        deployed model cannot explain)."""
        from churn_core.decisions.reasons import NO_REASONS

        note = ""
        try:
            answer, variant = self.answer(endpoint, {"instances": [record], "explain": int(reasons)})
        except ValidationError as exc:
            if NO_REASONS not in str(exc):
                raise
            answer, variant = self.answer(endpoint, {"instances": [record]})
            note = str(exc).split(": ", 1)[-1]
        prediction = answer["predictions"][0]
        variant = prediction.get("variant") or variant
        thresholds = self.variant_thresholds(endpoint)
        threshold = thresholds.get(variant, thresholds[""])
        return {"prediction": prediction, "threshold": threshold, "variant": variant,
                "band": campaign.risk_band(float(prediction["churn_probability"]), threshold),
                "reasons": prediction.get("reasons"), "reasons_note": note}

    def score_batch(self, name: str, frame, chunk_size: int = 2000,
                    progress: Callable[[float], None] | None = None, reasons: bool = True) -> BatchResult:
        """Score a table of customers in chunks (rows that cannot be scored reported by row number), each labelled
        and banded at the threshold of the variant that answered it and, with ``reasons``, its top reason
        (``text/csv; explain=1``)."""
        model = self.describe(name).model

        def send(body: str, explain: int) -> dict:
            answer, variant = self.answer(name, body, content_type=f"text/csv; explain={explain}" if explain
                                          else "text/csv")
            for prediction in answer["predictions"] if variant else []:  # a container older than CHURN_VARIANT
                prediction.setdefault("variant", variant)
            return answer

        return score_frame(send, frame, self.models.schema(model), chunk_size, progress,
                           threshold=self.variant_thresholds(name), reasons=reasons)

    # ---- delete ------------------------------------------------------------------------------
    def delete(self, name: str) -> dict:
        """Endpoint + endpoint config + model, as on SageMaker; the local process is stopped too."""
        row = records.endpoint(self.catalog, name)
        uid = row.get("uid") or ""
        records.mark_deleting(self.catalog, name, uid)
        config = records.endpoint_config(self.catalog, row["config"])
        deployed = [v["deployed"] for c in (row["config"], row["pending_config"]) if c
                    for v in config_variants(self.catalog, c)]
        try:
            self.backend.delete_endpoint(row, config, deployed)
        except Exception:
            records.update_own(self.catalog, name, uid, status=row["status"], updated_at=time.time())
            raise
        return records.forget(self.catalog, name, "deleted (endpoint, endpoint config and model)", uid)

    def cleanup(self) -> list[dict]:
        """Delete every endpoint this app created (on AWS: found by tag); report what was removed."""
        names = set(self.backend.owned_endpoint_names()) | set(records.endpoint_names(self.catalog))
        removed = []
        for name in sorted(names):
            try:
                removed.append(self.delete(name))
            except NotFoundError:
                removed.append(self.backend.delete_orphan(name))
        return removed
