"""Endpoint configurations as records: their production variants and the deployed models they serve."""

from __future__ import annotations

import sqlite3
import time

from churn_core.catalog.database import Catalog
from churn_core.names import derived_name


def config_variants(catalog: Catalog, config: str, conn: sqlite3.Connection | None = None) -> list[dict]:
    """The variants of a configuration: [{"variant", "weight", "deployed": deployed_models row}, …]."""
    run = conn.execute if conn is not None else None

    def query(sql: str, args: tuple) -> list[dict]:
        return run(sql, args).fetchall() if run else catalog.query(sql, args)

    rows = query("SELECT v.variant, v.weight, d.* FROM endpoint_variants v JOIN deployed_models d "
                 "ON d.name = v.deployed_model WHERE v.config = ? ORDER BY v.rowid", (config,))
    if rows:
        return [{"variant": r.pop("variant"), "weight": r.pop("weight"), "deployed": r} for r in rows]
    legacy = query("SELECT d.* FROM endpoint_configs c JOIN deployed_models d ON d.name = c.deployed_model "
                   "WHERE c.name = ?", (config,))  # configurations made before variants existed
    return [{"variant": "AllTraffic", "weight": 1.0, "deployed": legacy[0]}] if legacy else []


def same_models_config(conn: sqlite3.Connection, endpoint: str, current: str, suffix: str) -> dict:
    """A copy of configuration ``current`` under a new name: the same variants, weights and deployed models (no
    model is made again; a capture change on SageMaker is such a copy, with another DataCaptureConfig)."""
    old = conn.execute("SELECT * FROM endpoint_configs WHERE name = ?", (current,)).fetchone()
    config = derived_name(endpoint, f"-config{suffix}")  # the one naming rule, as insert_config
    for v in config_variants(None, current, conn):
        conn.execute("INSERT INTO endpoint_variants (config, variant, deployed_model, weight) VALUES (?, ?, ?, ?)",
                     (config, v["variant"], v["deployed"]["name"], float(v["weight"])))
    conn.execute("INSERT INTO endpoint_configs (name, deployed_model, instance_type, instance_count, created_at) "
                 "VALUES (?, ?, ?, ?, ?)", (config, old["deployed_model"], old["instance_type"],
                                            int(old["instance_count"]), time.time()))
    return {"name": config, "instance_type": old["instance_type"], "instance_count": int(old["instance_count"]),
            "deployed": [v["deployed"] for v in config_variants(None, config, conn)]}


def insert_config(conn: sqlite3.Connection, endpoint: str, generation: int, plans: list,
                  instance_type: str, instance_count: int, suffix: str) -> dict:
    """The deployed models, the configuration and its variants of one generation (in a transaction)."""
    now = time.time()
    config = derived_name(endpoint, f"-config{suffix}")  # unique however long the endpoint's name
    deployed_rows = []
    for i, plan in enumerate(plans, 1):
        tag = f"-m{generation}-{i}" if len(plans) > 1 or generation > 1 else "-model"
        deployed = {
            "name": derived_name(endpoint, tag),
            "model": plan.trained["name"], "artifact_key": plan.trained["artifact_key"],
            "artifact_sha256": plan.trained["artifact_sha256"], "created_at": now,
            "grp": plan.version.group if plan.version is not None else "",
            "version": plan.version.version if plan.version is not None else None,
            "version_arn": plan.version.arn if plan.version is not None else "",
            "threshold": plan.version.threshold if plan.version is not None else plan.trained.get("threshold"),
        }
        conn.execute(f"INSERT INTO deployed_models ({', '.join(deployed)}) VALUES ({', '.join('?' * len(deployed))})",
                     list(deployed.values()))
        conn.execute("INSERT INTO endpoint_variants (config, variant, deployed_model, weight) VALUES (?, ?, ?, ?)",
                     (config, plan.name, deployed["name"], float(plan.weight)))
        deployed_rows.append(deployed)
    conn.execute("INSERT INTO endpoint_configs (name, deployed_model, instance_type, instance_count, created_at) "
                 "VALUES (?, ?, ?, ?, ?)", (config, deployed_rows[0]["name"], instance_type, int(instance_count), now))
    return {"name": config, "instance_type": instance_type, "instance_count": int(instance_count),
            "deployed": deployed_rows}


def delete_config(conn: sqlite3.Connection, config: str, keep_models: set[str] = frozenset()) -> list[str]:
    """A configuration, its variants and the deployed models no other configuration uses; their names."""
    models = [r["deployed_model"] for r in conn.execute(
        "SELECT deployed_model FROM endpoint_variants WHERE config = ?", (config,)).fetchall()]
    legacy = conn.execute("SELECT deployed_model FROM endpoint_configs WHERE name = ?", (config,)).fetchone()
    if legacy and legacy["deployed_model"] not in models:
        models.append(legacy["deployed_model"])
    conn.execute("DELETE FROM endpoint_variants WHERE config = ?", (config,))
    conn.execute("DELETE FROM endpoint_configs WHERE name = ?", (config,))
    removed = []
    for name in models:
        if name in keep_models:
            continue
        conn.execute("DELETE FROM deployed_models WHERE name = ?", (name,))
        removed.append(name)
    return removed


def serving(catalog: Catalog, model: str, grp: str | None = "", version: int | None = None) -> list[dict]:
    """Endpoints whose configuration (current or pending) serves a trained model as itself (``grp`` "") or as
    registry version ``grp`` ``version`` (``grp`` None: in any form): [{"endpoint", "variant", "threshold"}, …]
    (the deployed threshold)."""
    return catalog.query(
        "SELECT DISTINCT e.name AS endpoint, v.variant, d.threshold FROM endpoints e "
        "JOIN endpoint_variants v ON v.config IN (e.config, e.pending_config) "
        "JOIN deployed_models d ON d.name = v.deployed_model "
        "WHERE d.model = ? AND (? IS NULL OR (d.grp = ? AND (d.version IS ? OR d.version = ?))) ORDER BY e.name",
        (model, grp, grp, version, version))
