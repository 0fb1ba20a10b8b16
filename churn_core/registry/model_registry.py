"""The model registry: groups of numbered versions with an approval status and movable aliases.

The same semantics as SageMaker's Model Registry (model package groups, versions 1, 2, …,
``PendingManualApproval → Approved | Rejected``) and MLflow's aliases (``champion``,
``challenger``). A version is a snapshot of a trained model: its metrics, hyperparameters,
dataset and code hashes and artifact hash, frozen when it is registered, and its decision threshold: the
model's when it is registered, then the version's own (set on the version, ``decisions/thresholds.py``).
The catalog holds it on both backends; on SageMaker the backend also creates the model package
and keeps its approval in step, so AWS says what the dashboard says. Every change is an event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from churn_core.catalog import actor
from churn_core.catalog import jobs as job_records
from churn_core.catalog import registry as records
from churn_core.catalog.endpoints import served_history
from churn_core.catalog.database import Catalog, loads
from churn_core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from churn_core.names import check_name

PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"
STATUSES = (PENDING, APPROVED, REJECTED)
STATUS_WORDS = {PENDING: "waiting for approval", APPROVED: "approved", REJECTED: "rejected"}  # what people read
ALIASES = ("champion", "challenger")


@dataclass
class ModelVersion:
    group: str
    version: int
    model: str  # the trained model (its training job's name)
    status: str
    status_note: str
    status_at: float | None
    note: str
    created_at: float
    dataset: str
    dataset_sha256: str
    code_sha256: str
    artifact_key: str
    artifact_sha256: str
    algorithm: str
    hyperparameters: dict
    metrics: dict
    threshold: float | None
    arn: str
    aliases: list[str] = field(default_factory=list)
    registered_by: str = ""  # who registered it ("" before this was recorded)
    status_by: str = ""  # who approved or rejected it

    @property
    def label(self) -> str:
        """``churn-data v3 (champion)``: how pages name a version."""
        tags = f" ({', '.join(self.aliases)})" if self.aliases else ""
        return f"{self.group} v{self.version}{tags}"

    @property
    def status_text(self) -> str:
        """``waiting for approval``: the status in words (``status`` keeps SageMaker's value)."""
        return STATUS_WORDS.get(self.status, self.status)

    @classmethod
    def from_row(cls, row: dict, aliases: list[str]) -> "ModelVersion":
        return cls(
            group=row["grp"], version=int(row["version"]), model=row["model"], status=row["status"],
            status_note=row["status_note"], status_at=row["status_at"], note=row["note"],
            created_at=row["created_at"], dataset=row["dataset"], dataset_sha256=row["dataset_sha256"],
            code_sha256=row["code_sha256"], artifact_key=row["artifact_key"], artifact_sha256=row["artifact_sha256"],
            algorithm=row["algorithm"], hyperparameters=loads(row["hyperparameters_json"], {}),
            metrics=loads(row["metrics_json"], {}), threshold=row["threshold"], arn=row["arn"], aliases=aliases,
            registered_by=row.get("registered_by") or "", status_by=row.get("status_by") or "",
        )


def version_key(group: str, version: int) -> str:
    """The name a version's events are recorded under."""
    return f"{group}/v{version}"


class Registry:
    """The registry's rules, including the approval rule every deploy path and page asks; ``backend`` mirrors
    groups, versions and approvals where it has them."""

    def __init__(self, catalog: Catalog, backend, require_approval: bool = False):
        self.catalog = catalog
        self.backend = backend
        self.require_approval = require_approval

    # ---- the approval rule -------------------------------------------------------------------
    def deploy_refusal(self, version: ModelVersion) -> str:
        """Why ``version`` may not serve behind an endpoint ("" when it may): only Approved versions serve."""
        if version.status != APPROVED:
            return (f"{version.label} is {version.status_text}: only approved versions can be deployed or put behind "
                    "an endpoint. Approve it on the Models page first (with a note).")
        return ""

    def trained_by(self, version: ModelVersion) -> str:
        """Who trained the version's model ("" when unknown: trained before this was recorded, or its job is gone)."""
        try:
            return job_records.job(self.catalog, version.model).get("created_by") or ""
        except NotFoundError:
            return ""

    def approval_refusal(self, version: ModelVersion, approver: str) -> str:
        """Four-eyes (``CHURN_REQUIRE_APPROVAL=1``): why ``approver`` may not approve ``version`` ("" when they may):
        the approver must be neither who trained its model nor who registered it."""
        if not self.require_approval:
            return ""
        if not approver:
            return f"{version.label} can only be approved by a named user (CHURN_REQUIRE_APPROVAL=1 needs four eyes)."
        roles = [what for what, who in (("trained its model", self.trained_by(version)),
                                        ("registered it", version.registered_by)) if who and who == approver]
        if roles:
            return (f"{approver} {' and '.join(roles)}, so {approver} may not approve {version.label}: with "
                    "CHURN_REQUIRE_APPROVAL=1 a second person (with the approver role) must approve it (four eyes).")
        return ""

    def record_refusal(self, group: str, number: int, row: dict | None) -> str:
        """The same rule for a version's row as a transaction reads it (``catalog.endpoints.approval_refusal``:
        deploys, updates, variant splits and promotions re-check it where they commit)."""
        if row is None:
            return (f"{group} v{number} is no longer in the registry: only approved versions can be deployed or put "
                    "behind an endpoint. See the Models page for its versions.")
        return self.deploy_refusal(ModelVersion.from_row(row, []))

    def deployable(self, group: str, version_or_alias: int | str) -> ModelVersion:
        """The version, if the approval rule lets it serve; ConflictError saying why not otherwise."""
        version = self.get(group, version_or_alias)
        refusal = self.deploy_refusal(version)
        if refusal:
            raise ConflictError(refusal)
        return version

    def version_to_deploy(self, model: str) -> ModelVersion | None:
        """The registry version a trained model is deployed as: None when approval is not required (the model
        serves as itself), else its newest Approved version (ConflictError when it has none)."""
        if not self.require_approval:
            return None
        approved = [v for v in self.versions_of_model(model) if v.status == APPROVED]
        if not approved:
            raise ConflictError(
                f"Only approved model versions can be deployed here (CHURN_REQUIRE_APPROVAL=1), and model "
                f"{model} has none. Register it and approve the version on the Models page, then deploy that version."
            )
        return approved[-1]

    # ---- reading ---------------------------------------------------------------------------
    def groups(self) -> list[dict]:
        return records.groups(self.catalog)

    def versions(self, group: str) -> list[ModelVersion]:
        self._group(group)
        aliases = self._aliases(group)
        return [ModelVersion.from_row(r, aliases.get(int(r["version"]), []))
                for r in records.versions(self.catalog, group)]

    def get(self, group: str, version_or_alias: int | str) -> ModelVersion:
        """A version by number (``3``, ``"3"``, ``"v3"``) or alias (``"champion"``)."""
        number = self._resolve(group, version_or_alias)
        row = records.version(self.catalog, group, number)
        if row is None:
            raise NotFoundError(f"Model group {group!r} has no version {number}. See the Models page for its versions.")
        return ModelVersion.from_row(row, self._aliases(group).get(number, []))

    def versions_of_model(self, model: str) -> list[ModelVersion]:
        return [ModelVersion.from_row(r, self._aliases(r["grp"]).get(int(r["version"]), []))
                for r in records.versions_of_model(self.catalog, model)]

    def lineage(self, group: str) -> list[dict]:
        """dataset → training job → version → the endpoints (and variants) serving it now and before, with who
        trained, registered, approved (``status_by``) and deployed each (who set a threshold: ``threshold_record``)."""
        return [{"dataset": v.dataset, "dataset_sha256": v.dataset_sha256, "job": v.model, "version": v.version,
                 "label": v.label, "status": v.status, "trained_by": self.trained_by(v),
                 "registered_by": v.registered_by, "status_by": v.status_by,
                 "endpoints": served_history(self.catalog, v.model, v.group, v.version)}
                for v in self.versions(group)]

    # ---- changing --------------------------------------------------------------------------
    def register(self, trained: dict, group: str, note: str, threshold: float | None) -> ModelVersion:
        """The next version of ``group`` (created on first use) for a trained model's record."""
        check_name(group, "model group name")
        now = time.time()
        records.ensure_group(self.catalog, group, trained["dataset"])
        group_row = self._group(group)
        if not group_row["arn"]:
            arn = self.backend.ensure_model_group(group_row)
            if arn:
                records.set_group_arn(self.catalog, group, arn)
        remote = self.backend.register_model_version(self._group(group), trained, note)  # {"version", "arn"} or {}
        row = {
            "grp": group, "model": trained["name"], "status": PENDING, "status_note": "", "status_at": now,
            "note": note or "", "created_at": now, "dataset": trained["dataset"],
            "dataset_sha256": trained["dataset_sha256"], "code_sha256": trained["code_sha256"],
            "artifact_key": trained["artifact_key"], "artifact_sha256": trained["artifact_sha256"],
            "algorithm": trained["algorithm"], "hyperparameters_json": trained["hyperparameters_json"],
            "metrics_json": trained["metrics_json"], "threshold": threshold, "arn": remote.get("arn", ""),
            # the version keeps the record of the threshold it was registered with (who chose it, when, why)
            "threshold_json": (trained.get("threshold_json") or "{}") if threshold is not None else "{}",
            "version": remote.get("version"),
        }
        number = records.insert_version(self.catalog, row, version_key,
                                        f"registered from model {trained['name']} ({PENDING})"
                                        + (f": {note}" if note else ""))
        return self.get(group, number)

    def set_status(self, group: str, version: int | str, status: str, note: str) -> ModelVersion:
        if status not in STATUSES:
            raise ValidationError(f"Approval status must be one of {', '.join(STATUSES)} (got {status!r}).")
        current = self.get(group, version)
        if status == PENDING:
            raise ValidationError("A version goes from PendingManualApproval to Approved or Rejected, not back.")
        if status == APPROVED and (refusal := self.approval_refusal(current, actor.current())):
            raise PermissionDenied(refusal)
        self.backend.set_model_version_status(current, status, note or "")
        records.set_status(self.catalog, group, current.version, status, note or "",
                           version_key(group, current.version),
                           f"{current.status_text} → {STATUS_WORDS[status]}" + (f": {note}" if note else ""))
        return self.get(group, current.version)

    def set_alias(self, group: str, version: int | str, alias: str) -> ModelVersion:
        """Point ``alias`` at a version (at most one version per alias in a group: the old one loses it)."""
        if alias not in ALIASES:
            raise ValidationError(f"Alias must be one of {', '.join(ALIASES)} (got {alias!r}).")
        target = self.get(group, version)
        if target.status == REJECTED:
            raise ConflictError(f"{target.label} is rejected: a rejected version cannot be the {alias}.")
        records.set_alias(self.catalog, group, alias, target.version, version_key)
        return self.get(group, target.version)

    def clear_alias(self, group: str, alias: str) -> None:
        records.clear_alias(self.catalog, group, alias, version_key)

    # ---- helpers -----------------------------------------------------------------------------
    def _group(self, group: str) -> dict:
        row = records.group(self.catalog, group)
        if row is None:
            raise NotFoundError(f"No model group named {group!r}. Register a trained model on the Models page first.")
        return row

    def _aliases(self, group: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for r in records.aliases(self.catalog, group):
            out.setdefault(int(r["version"]), []).append(r["alias"])
        return out

    def _resolve(self, group: str, version_or_alias: Any) -> int:
        self._group(group)
        text = str(version_or_alias).strip().lower()
        if text in ALIASES:
            number = records.alias_version(self.catalog, group, text)
            if number is None:
                raise NotFoundError(f"Model group {group!r} has no {text} yet. Set it on the Models page.")
            return number
        text = text[1:] if text.startswith("v") else text
        if not text.isdigit():
            raise ValidationError(f"{version_or_alias!r} is neither a version number nor one of {', '.join(ALIASES)}.")
        return int(text)


def snapshot_fields(version: ModelVersion) -> dict[str, Any]:
    """What a deployed model records of the version it serves."""
    return {"grp": version.group, "version": version.version, "threshold": version.threshold}

