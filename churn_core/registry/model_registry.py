"""The model registry: groups of numbered versions with an approval status and movable aliases.

The same semantics as SageMaker's Model Registry (model package groups, versions 1, 2, …,
``PendingManualApproval → Approved | Rejected``) and MLflow's aliases (``champion``,
``challenger``). A version is a snapshot of a trained model: its metrics, hyperparameters,
dataset and code hashes, artifact hash and decision threshold, frozen when it is registered.
The catalog holds it on both backends; on SageMaker the backend also creates the model package
and keeps its approval in step, so AWS says what the dashboard says. Every change is an event.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from churn_core.catalog.database import Catalog, loads
from churn_core.errors import ConflictError, NotFoundError, ValidationError
from churn_core.names import check_name

PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"
STATUSES = (PENDING, APPROVED, REJECTED)
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

    @property
    def label(self) -> str:
        """``churn-data v3 (champion)``: how pages name a version."""
        tags = f" ({', '.join(self.aliases)})" if self.aliases else ""
        return f"{self.group} v{self.version}{tags}"

    @classmethod
    def from_row(cls, row: dict, aliases: list[str]) -> "ModelVersion":
        return cls(
            group=row["grp"], version=int(row["version"]), model=row["model"], status=row["status"],
            status_note=row["status_note"], status_at=row["status_at"], note=row["note"],
            created_at=row["created_at"], dataset=row["dataset"], dataset_sha256=row["dataset_sha256"],
            code_sha256=row["code_sha256"], artifact_key=row["artifact_key"], artifact_sha256=row["artifact_sha256"],
            algorithm=row["algorithm"], hyperparameters=loads(row["hyperparameters_json"], {}),
            metrics=loads(row["metrics_json"], {}), threshold=row["threshold"], arn=row["arn"], aliases=aliases,
        )


def version_key(group: str, version: int) -> str:
    """The name a version's events are recorded under."""
    return f"{group}/v{version}"


class Registry:
    """Catalog rules of the registry; ``backend`` mirrors groups, versions and approvals where it has them."""

    def __init__(self, catalog: Catalog, backend):
        self.catalog = catalog
        self.backend = backend

    # ---- reading ---------------------------------------------------------------------------
    def groups(self) -> list[dict]:
        return self.catalog.query(
            "SELECT g.*, (SELECT COUNT(*) FROM model_versions v WHERE v.grp = g.name) AS versions "
            "FROM model_groups g ORDER BY g.created_at DESC"
        )

    def versions(self, group: str) -> list[ModelVersion]:
        self._group(group)
        aliases = self._aliases(group)
        rows = self.catalog.query("SELECT * FROM model_versions WHERE grp = ? ORDER BY version DESC", (group,))
        return [ModelVersion.from_row(r, aliases.get(int(r["version"]), [])) for r in rows]

    def get(self, group: str, version_or_alias: int | str) -> ModelVersion:
        """A version by number (``3``, ``"3"``, ``"v3"``) or alias (``"champion"``)."""
        number = self._resolve(group, version_or_alias)
        row = self.catalog.one("SELECT * FROM model_versions WHERE grp = ? AND version = ?", (group, number))
        if row is None:
            raise NotFoundError(f"Model group {group!r} has no version {number}. See the Models page for its versions.")
        return ModelVersion.from_row(row, self._aliases(group).get(number, []))

    def versions_of_model(self, model: str) -> list[ModelVersion]:
        rows = self.catalog.query("SELECT * FROM model_versions WHERE model = ? ORDER BY created_at", (model,))
        return [ModelVersion.from_row(r, self._aliases(r["grp"]).get(int(r["version"]), [])) for r in rows]

    # ---- changing --------------------------------------------------------------------------
    def register(self, trained: dict, group: str, note: str, threshold: float | None) -> ModelVersion:
        """The next version of ``group`` (created on first use) for a trained model's record."""
        check_name(group, "model group name")
        now = time.time()
        with self.catalog.tx() as conn:
            existing = conn.execute("SELECT * FROM model_groups WHERE name = ?", (group,)).fetchone()
            if existing is None:
                conn.execute("INSERT INTO model_groups (name, dataset, created_at) VALUES (?, ?, ?)",
                             (group, trained["dataset"], now))
                self.catalog.event("registry", group, f"model group created for dataset {trained['dataset']}", conn)
        group_row = self._group(group)
        if not group_row["arn"]:
            arn = self.backend.ensure_model_group(group_row)
            if arn:
                self.catalog.update("model_groups", group, arn=arn)
        remote = self.backend.register_model_version(self._group(group), trained, note)  # {"version", "arn"} or {}
        row = {
            "grp": group, "model": trained["name"], "status": PENDING, "status_note": "", "status_at": now,
            "note": note or "", "created_at": now, "dataset": trained["dataset"],
            "dataset_sha256": trained["dataset_sha256"], "code_sha256": trained["code_sha256"],
            "artifact_key": trained["artifact_key"], "artifact_sha256": trained["artifact_sha256"],
            "algorithm": trained["algorithm"], "hyperparameters_json": trained["hyperparameters_json"],
            "metrics_json": trained["metrics_json"], "threshold": threshold, "arn": remote.get("arn", ""),
        }
        try:
            with self.catalog.tx() as conn:  # BEGIN IMMEDIATE: two registrations never get one number
                number = remote.get("version") or conn.execute(
                    "SELECT COALESCE(MAX(version), 0) + 1 AS n FROM model_versions WHERE grp = ?", (group,)
                ).fetchone()["n"]
                row["version"] = int(number)
                conn.execute(f"INSERT INTO model_versions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                             list(row.values()))
                self.catalog.event("registry", version_key(group, row["version"]),
                                   f"registered from model {trained['name']} ({PENDING})"
                                   + (f": {note}" if note else ""), conn)
        except sqlite3.IntegrityError:
            raise ConflictError(f"Version {row.get('version')} of {group!r} was registered at the same moment "
                                "elsewhere; register again.") from None
        return self.get(group, row["version"])

    def set_status(self, group: str, version: int | str, status: str, note: str) -> ModelVersion:
        if status not in STATUSES:
            raise ValidationError(f"Approval status must be one of {', '.join(STATUSES)} (got {status!r}).")
        current = self.get(group, version)
        if status == PENDING:
            raise ValidationError("A version goes from PendingManualApproval to Approved or Rejected, not back.")
        self.backend.set_model_version_status(current, status, note or "")
        with self.catalog.tx() as conn:
            conn.execute("UPDATE model_versions SET status = ?, status_note = ?, status_at = ? "
                         "WHERE grp = ? AND version = ?", (status, note or "", time.time(), group, current.version))
            self.catalog.event("registry", version_key(group, current.version),
                               f"{current.status} → {status}" + (f": {note}" if note else ""), conn)
        return self.get(group, current.version)

    def set_alias(self, group: str, version: int | str, alias: str) -> ModelVersion:
        """Point ``alias`` at a version (at most one version per alias in a group: the old one loses it)."""
        if alias not in ALIASES:
            raise ValidationError(f"Alias must be one of {', '.join(ALIASES)} (got {alias!r}).")
        target = self.get(group, version)
        if target.status == REJECTED:
            raise ConflictError(f"{target.label} is Rejected; a rejected version cannot be the {alias}.")
        with self.catalog.tx() as conn:
            before = conn.execute("SELECT version FROM model_aliases WHERE grp = ? AND alias = ?",
                                  (group, alias)).fetchone()
            conn.execute("INSERT OR REPLACE INTO model_aliases (grp, alias, version, updated_at) VALUES (?, ?, ?, ?)",
                         (group, alias, target.version, time.time()))
            moved = f" (was v{before['version']})" if before and before["version"] != target.version else ""
            self.catalog.event("registry", version_key(group, target.version), f"alias {alias} set{moved}", conn)
        return self.get(group, target.version)

    def clear_alias(self, group: str, alias: str) -> None:
        with self.catalog.tx() as conn:
            row = conn.execute("SELECT version FROM model_aliases WHERE grp = ? AND alias = ?",
                               (group, alias)).fetchone()
            conn.execute("DELETE FROM model_aliases WHERE grp = ? AND alias = ?", (group, alias))
            if row:
                self.catalog.event("registry", version_key(group, row["version"]), f"alias {alias} removed", conn)

    # ---- helpers -----------------------------------------------------------------------------
    def _group(self, group: str) -> dict:
        row = self.catalog.one("SELECT * FROM model_groups WHERE name = ?", (group,))
        if row is None:
            raise NotFoundError(f"No model group named {group!r}. Register a trained model on the Models page first.")
        return row

    def _aliases(self, group: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for r in self.catalog.query("SELECT alias, version FROM model_aliases WHERE grp = ? ORDER BY alias", (group,)):
            out.setdefault(int(r["version"]), []).append(r["alias"])
        return out

    def _resolve(self, group: str, version_or_alias: Any) -> int:
        self._group(group)
        text = str(version_or_alias).strip().lower()
        if text in ALIASES:
            row = self.catalog.one("SELECT version FROM model_aliases WHERE grp = ? AND alias = ?", (group, text))
            if row is None:
                raise NotFoundError(f"Model group {group!r} has no {text} yet. Set it on the Models page.")
            return int(row["version"])
        text = text[1:] if text.startswith("v") else text
        if not text.isdigit():
            raise ValidationError(f"{version_or_alias!r} is neither a version number nor one of {', '.join(ALIASES)}.")
        return int(text)


def snapshot_fields(version: ModelVersion) -> dict[str, Any]:
    """What a deployed model records of the version it serves."""
    return {"grp": version.group, "version": version.version, "threshold": version.threshold}

