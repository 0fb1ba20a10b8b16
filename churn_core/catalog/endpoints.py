"""Endpoint records: a deploy's rows, its updates, weights, capture share and history.

Every change is one transaction guarded by the deploy's ``uid``, so a session never changes an
endpoint that another session deleted, or deleted and deployed again, meanwhile.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Callable

from churn_core.catalog import actor
from churn_core.catalog.database import Catalog, with_creator
from churn_core.catalog.endpoint_configs import config_variants, delete_config, insert_config, same_models_config
from churn_core.catalog.name_clash import check_free
from churn_core.errors import ConflictError, NotFoundError


def _insert(conn: sqlite3.Connection, table: str, row: dict) -> None:
    row = with_creator(table, row)
    conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


# The approval rule (registry/model_registry.py) as the catalog asks it inside a transaction: given a registry
# version's (group, number) and its row as it is now (None when it is gone), why it may not serve ("" if it may).
Refusal = Callable[[str, int, "dict | None"], str]


def approval_refusal(conn: sqlite3.Connection, deployed: list[dict], refuse: Refusal | None) -> str:
    """Why one of the ``deployed`` models may not serve, read in the caller's transaction ("" when all may):
    the versions' status is read again where the change commits, so a rejection that commits first is obeyed."""
    if refuse is None:
        return ""
    for row in deployed:
        if not row.get("grp"):
            continue  # a model deployed as itself (no approval required)
        version = conn.execute("SELECT * FROM model_versions WHERE grp = ? AND version = ?",
                               (row["grp"], row["version"])).fetchone()
        refusal = refuse(row["grp"], int(row["version"]), version)
        if refusal:
            return refusal
    return ""


def check_approval(catalog: Catalog, deployed: list[dict], refuse: Refusal | None) -> None:
    """ConflictError (the rule's words) when one of the ``deployed`` models may not serve now."""
    with catalog.tx() as conn:
        refusal = approval_refusal(conn, deployed, refuse)
    if refusal:
        raise ConflictError(refusal)


def endpoint(catalog: Catalog, name: str) -> dict:
    row = catalog.one("SELECT * FROM endpoints WHERE name = ?", (name,))
    if row is None:
        raise NotFoundError(f"No endpoint named {name!r}. Deploy one on the Endpoints page.")
    return row


def own_endpoint(catalog: Catalog, name: str, uid: str) -> dict | None:
    """The row of deploy ``uid`` of the endpoint, or None if it was deleted or replaced."""
    return catalog.one("SELECT * FROM endpoints WHERE name = ? AND uid = ?", (name, uid))


def endpoints(catalog: Catalog) -> list[dict]:
    return catalog.query("SELECT * FROM endpoints ORDER BY created_at DESC")


def endpoint_names(catalog: Catalog) -> list[str]:
    return [r["name"] for r in catalog.query("SELECT name FROM endpoints ORDER BY created_at DESC")]


def endpoint_config(catalog: Catalog, name: str) -> dict | None:
    return catalog.one("SELECT * FROM endpoint_configs WHERE name = ?", (name,))


def create(catalog: Catalog, deployed: dict, config: dict, row: dict, version, served: str,
           refuse: Refusal | None = None) -> None:
    """A deploy's rows (deployed model, configuration, its one variant, endpoint, history) in one transaction,
    which reads the version's approval again (``refuse``): a version rejected meanwhile is never deployed."""
    try:
        with catalog.tx() as conn:
            refusal = approval_refusal(conn, [deployed], refuse)
            if refusal:
                raise ConflictError(refusal)
            check_free(conn, "endpoints", "endpoint", row["name"],
                       "Pick another name or delete the existing endpoint first.")
            for table, values in (("deployed_models", deployed), ("endpoint_configs", config), ("endpoints", row)):
                _insert(conn, table, values)
            conn.execute("INSERT INTO endpoint_variants (config, variant, deployed_model, weight) "
                         "VALUES (?, 'AllTraffic', ?, 1.0)", (config["name"], deployed["name"]))
            catalog.event("endpoint", row["name"], f"Creating from {served}", conn)
            conn.execute("INSERT INTO endpoint_history (endpoint, variant, model, grp, version, started_at, "
                         "started_by) VALUES (?, 'AllTraffic', ?, ?, ?, ?, ?)",
                         (row["name"], row["model"], deployed["grp"], deployed["version"], row["created_at"],
                          actor.current()))
    except sqlite3.IntegrityError:
        raise ConflictError(
            f"An endpoint named {row['name']!r} (or its config or model) already exists. "
            "Pick another name or delete the existing endpoint first."
        ) from None


def update_own(catalog: Catalog, name: str, uid: str, **fields) -> None:
    """Set fields of deploy ``uid``'s row (nothing if it was deleted or replaced meanwhile)."""
    if not fields:
        return
    cols = ", ".join(f"{key} = ?" for key in fields)
    with catalog.tx() as conn:
        conn.execute(f"UPDATE endpoints SET {cols} WHERE name = ? AND uid = ?", [*fields.values(), name, uid])


def update(catalog: Catalog, name: str, **fields) -> None:
    catalog.update("endpoints", name, **fields)


def mark_deleting(catalog: Catalog, name: str, uid: str) -> None:
    with catalog.tx() as conn:
        conn.execute("UPDATE endpoints SET status = 'Deleting', updated_at = ? WHERE name = ? AND uid = ?",
                     (time.time(), name, uid))
        catalog.event("endpoint", name, "Deleting", conn)


def forget(catalog: Catalog, name: str, message: str, uid: str | None = None) -> dict:
    """Remove the endpoint's rows (only the deploy ``uid``'s, when given: never a newer deploy of the name)."""
    removed = {"endpoint": name, "endpoint_config": None, "model": None}
    with catalog.tx() as conn:
        row = conn.execute("SELECT config, pending_config, uid FROM endpoints WHERE name = ?", (name,)).fetchone()
        if uid is not None and (row is None or row["uid"] != uid):
            return removed  # another session already removed it (and maybe deployed the name again)
        if row:
            if row["pending_config"]:
                delete_config(conn, row["pending_config"])
            if conn.execute("SELECT 1 FROM endpoint_configs WHERE name = ?", (row["config"],)).fetchone():
                models = delete_config(conn, row["config"])
                removed.update(endpoint_config=row["config"], model=", ".join(models) or None)
        conn.execute("DELETE FROM endpoints WHERE name = ?", (name,))
        conn.execute("UPDATE endpoint_history SET ended_at = ? WHERE endpoint = ? AND ended_at IS NULL",
                     (time.time(), name))
        catalog.event("endpoint", name, message, conn)
    return removed


def set_weights(catalog: Catalog, row: dict, weights: dict[str, float], refuse: Refusal | None = None) -> None:
    """New variant weights; a variant given more traffic must still be allowed to serve (read in this
    transaction); less traffic for a version rejected since it went live is always allowed."""
    with catalog.tx() as conn:
        if conn.execute("SELECT 1 FROM endpoints WHERE name = ? AND uid = ? AND config = ?",
                        (row["name"], row.get("uid") or "", row["config"])).fetchone() is None:
            raise ConflictError(f"Endpoint {row['name']} was deleted, deployed again or updated by another session "
                                "meanwhile; look at it again before changing its weights.")
        refusal = approval_refusal(conn, [v["deployed"] for v in config_variants(catalog, row["config"], conn)
                                          if weights.get(v["variant"], v["weight"]) > v["weight"]], refuse)
        if refusal:
            raise ConflictError(refusal)
        for name, weight in weights.items():
            conn.execute("UPDATE endpoint_variants SET weight = ? WHERE config = ? AND variant = ?",
                         (weight, row["config"], name))
        catalog.event("endpoint", row["name"], "variant weights: " + ", ".join(
            f"{n} {w:g}" for n, w in weights.items()), conn)


def begin_update(catalog: Catalog, row: dict, generation: int, plans: list | None, message: str,
                 refuse: Refusal | None = None) -> dict:
    """The next configuration of an InService endpoint, pending: the endpoint is Updating until it serves it.
    Its versions' approval is read again in this transaction (``refuse``). ``plans`` None: the same variants and
    deployed models as now (a capture change: nothing new serves, so there is no approval to ask)."""
    name, uid = row["name"], row.get("uid") or ""
    try:
        with catalog.tx() as conn:
            if plans is None:
                config = same_models_config(conn, name, row["config"], f"-{generation}")
            else:
                config = insert_config(conn, name, generation, plans, row["instance_type"], row["instance_count"],
                                       f"-{generation}")
            refusal = approval_refusal(conn, config["deployed"], refuse) if plans is not None else ""
            if refusal:
                raise ConflictError(refusal)
            moved = conn.execute(
                "UPDATE endpoints SET status = 'Updating', pending_config = ?, generation = ?, failure_reason = '', "
                "updated_at = ?, updated_by = ? WHERE name = ? AND uid = ? AND status = 'InService'",
                (config["name"], generation, time.time(), actor.current(), name, uid)).rowcount
            if not moved:
                raise ConflictError(f"Endpoint {name} was deleted, deployed again or changed by another session "
                                    "meanwhile; look at it again and retry the update.")
            catalog.event("endpoint", name, message, conn)
    except sqlite3.IntegrityError:
        raise ConflictError(f"Endpoint {name} is being updated elsewhere at the same moment; try again.") from None
    return config


def finish_update(catalog: Catalog, name: str, uid: str, retire: Callable[[str, list[str]], None],
                  refuse: Refusal | None = None) -> str:
    """The endpoint serves its pending configuration: the old one goes (``retire(config, models)`` tells the
    backend), the history records the change. Only for the deploy ``uid``: a later deploy is never touched.

    The versions' approval is read again in this same transaction (``refuse``): when one was rejected while the
    update ran, the update is rolled back here instead (the old configuration stays the endpoint's) and the
    reason is returned ("" when the update finished): the caller then puts the old models back in service."""
    now = time.time()
    with catalog.tx() as conn:
        row = conn.execute("SELECT * FROM endpoints WHERE name = ? AND uid = ?", (name, uid)).fetchone()
        if row is None or not row["pending_config"]:
            return ""
        new = config_variants(catalog, row["pending_config"], conn)
        kept = {v["deployed"]["name"] for v in config_variants(catalog, row["config"], conn)}
        refusal = approval_refusal(conn, [v["deployed"] for v in new if v["weight"] > 0
                                          and v["deployed"]["name"] not in kept], refuse)
        if refusal:
            reason = f"The update was refused and rolled back: {refusal}"
            _roll_back(conn, catalog, row, reason)
            return reason
        retired = delete_config(conn, row["config"], keep_models={v["deployed"]["name"] for v in new})
        retire(row["config"], retired)
        top = max(new, key=lambda v: v["weight"])["deployed"]
        conn.execute("UPDATE endpoints SET config = ?, pending_config = '', model = ?, status = 'InService', "
                     "failure_reason = '', updated_at = ? WHERE name = ? AND uid = ?",
                     (row["pending_config"], top["model"], now, name, uid))
        conn.execute("UPDATE endpoint_history SET ended_at = ? WHERE endpoint = ? AND ended_at IS NULL", (now, name))
        for v in new:
            conn.execute("INSERT INTO endpoint_history (endpoint, variant, model, grp, version, weight, started_at, "
                         "started_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (name, v["variant"], v["deployed"]["model"], v["deployed"]["grp"], v["deployed"]["version"],
                          v["weight"], now, row.get("updated_by") or actor.current()))  # who asked for it
        catalog.event("endpoint", name, "InService: now serving " + ", ".join(
            f"{v['variant']} ({v['weight']:g})" for v in new), conn)
    return ""


def roll_back_update(catalog: Catalog, name: str, reason: str, uid: str) -> None:
    """Back to the configuration the endpoint serves (only the deploy ``uid``'s rows)."""
    with catalog.tx() as conn:
        row = conn.execute("SELECT * FROM endpoints WHERE name = ? AND uid = ?", (name, uid)).fetchone()
        if row is None or not row["pending_config"]:
            return
        _roll_back(conn, catalog, row, reason)


def _roll_back(conn: sqlite3.Connection, catalog: Catalog, row: dict, reason: str) -> None:
    keep = {v["deployed"]["name"] for v in config_variants(catalog, row["config"], conn)}
    delete_config(conn, row["pending_config"], keep_models=keep)
    conn.execute("UPDATE endpoints SET pending_config = '', status = 'InService', failure_reason = ?, "
                 "updated_at = ? WHERE name = ? AND uid = ?", (reason, time.time(), row["name"], row["uid"]))
    catalog.event("endpoint", row["name"], reason, conn)


def set_capture_percent(catalog: Catalog, name: str, uid: str, percent: float, max_mb: float | None = None,
                        retention_days: float | None = None) -> None:
    """The capture share and (where given; None keeps what the endpoint has) its byte budget and retention."""
    with catalog.tx() as conn:
        conn.execute("UPDATE endpoints SET capture_percent = ?, capture_max_mb = COALESCE(?, capture_max_mb), "
                     "capture_retention_days = COALESCE(?, capture_retention_days), updated_at = ? "
                     "WHERE name = ? AND uid = ?", (percent, max_mb, retention_days, time.time(), name, uid))
        bounds = "".join(f", {what} {value:g}" for what, value in (("max MB", max_mb), ("retention days",
                                                                                        retention_days)) if value)
        catalog.event("endpoint", name, f"data capture {'off' if not percent else f'{percent:g} %'}{bounds}", conn)


def served_history(catalog: Catalog, model: str, group: str, version: int) -> list[dict]:
    """Where a registry version (or its model deployed without the registry) served, and when."""
    return catalog.query(
        "SELECT endpoint, variant, weight, started_at, ended_at, started_by AS deployed_by FROM endpoint_history "
        "WHERE model = ? AND (grp = ? AND version = ? OR grp = '') ORDER BY started_at",
        (model, group, version))


def token_record(catalog: Catalog, name: str, uid: str) -> dict | None:
    """The SHA-256 of the bearer token issued for this deploy of an endpoint (None when none was issued)."""
    return catalog.one("SELECT * FROM endpoint_tokens WHERE endpoint = ? AND uid = ?", (name, uid))


def set_token(catalog: Catalog, name: str, uid: str, sha256: str, message: str) -> None:
    with catalog.tx() as conn:
        conn.execute("INSERT OR REPLACE INTO endpoint_tokens (endpoint, uid, sha256, created_at, created_by) "
                     "VALUES (?, ?, ?, ?, ?)", (name, uid, sha256, time.time(), actor.current()))
        catalog.event("endpoint", name, message, conn)
