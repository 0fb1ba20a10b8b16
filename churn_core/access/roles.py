"""Roles: who the acting user is, what each role may do, and the one check every state-changing call passes.

Local default (no ``CHURN_ROLES_FILE``): one person, the operating-system user (or the name given to
``connect(user=...)``) with every role, so nothing changes for someone alone on a laptop.

Team mode: ``CHURN_ROLES_FILE`` names a TOML file::

    default_role = "viewer"          # what anyone not listed gets ("" for nothing)
    claim = "groups"                 # optional: an OIDC claim whose values map to roles below
    [users]
    "alice@example.com" = ["analyst"]
    "bob@example.com" = ["approver"]
    [groups]                         # values of the claim -> roles
    "churn-admins" = ["admin"]

The file is read again when it changes, so a role granted or taken away applies to the user's next action.

Roles: viewer reads everything; analyst uploads, trains, tunes, scores, plans and registers; approver approves,
rejects and moves aliases; admin deploys, updates, splits and deletes endpoints, sets thresholds on models that
serve, changes settings, restores and purges. **admin implies every other role** (an admin can do anything an
analyst or approver can); analyst and approver each include viewer but not each other. Four-eyes
(``CHURN_REQUIRE_APPROVAL=1``, in ``registry/model_registry.py``) binds admins too.

``METHOD_ROLES`` is the table of every state-changing ``Platform`` method and the role it needs; every other
public method is in ``READ_ONLY`` (a test holds that the two cover the class, so nothing new escapes). ``guarded``
applies the table to the class once: each listed method checks the role, then runs as the acting user
(``catalog.actor``), so its records say who did it.
"""

from __future__ import annotations

import functools
import getpass
import inspect
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from churn_core.catalog import actor
from churn_core.catalog.endpoint_configs import serving
from churn_core.errors import ChurnError, PermissionDenied, ValidationError
from churn_core.wording import noun

VIEWER, ANALYST, APPROVER, ADMIN = "viewer", "analyst", "approver", "admin"
ROLES = (VIEWER, ANALYST, APPROVER, ADMIN)
IMPLIES = {VIEWER: {VIEWER}, ANALYST: {ANALYST, VIEWER}, APPROVER: {APPROVER, VIEWER}, ADMIN: set(ROLES)}
ENV = "CHURN_ROLES_FILE"

# Every state-changing Platform method → the role it needs.
METHOD_ROLES: dict[str, str] = {
    # analyst: upload, train, tune, score, plan, register
    "upload_dataset": ANALYST, "load_sample": ANALYST, "start_training": ANALYST, "stop_training": ANALYST,
    "start_tuning": ANALYST, "stop_tuning": ANALYST, "start_transform": ANALYST, "stop_transform": ANALYST,
    "invoke": ANALYST, "score_customer": ANALYST, "score_batch": ANALYST, "evaluate": ANALYST,
    "plan_campaign": ANALYST, "set_threshold": ANALYST, "register": ANALYST,
    # approver: approve, reject, move aliases
    "approve": APPROVER, "reject": APPROVER, "set_alias": APPROVER,
    # admin: endpoints, thresholds of serving models, settings, restore, purge
    "deploy": ADMIN, "deploy_version": ADMIN, "update_endpoint": ADMIN, "set_variants": ADMIN,
    "promote_challenger": ADMIN, "delete_endpoint": ADMIN, "cleanup": ADMIN, "set_capture": ADMIN,
    "alert_webhook": ADMIN, "set_drift_thresholds": ANALYST,  # (both also read, without a value)
    "schedule_monitoring": ADMIN, "endpoint_token": ADMIN, "delete_dataset": ADMIN, "delete_tuning": ADMIN,
    "backup_catalog": ADMIN, "restore_catalog_backup": ADMIN, "rebuild_catalog": ADMIN,
}

# Every other public Platform method and property: reads (and checks that store nothing), open to anyone.
READ_ONLY = frozenset({
    "offers", "user", "check_connection", "validate_dataset", "list_datasets", "get_dataset",
    "read_dataset", "describe_training", "list_training_jobs", "job_names", "count_training_jobs", "training_log",
    "compare", "evaluation", "model_schema", "get_model", "model_threshold", "model_names", "list_models",
    "wait_for_endpoint", "describe_endpoint", "endpoint_names", "list_endpoints", "client_snippets", "endpoint_log",
    "endpoint_traffic", "read_customers", "row_warnings", "field_warnings", "test_predictions", "threshold_record",
    "captured", "drift_badge", "drift_history", "baseline", "monitoring_schedule", "list_versions", "get_version",
    "model_groups", "versions_of_model", "deploy_refusal", "approval_refusal", "lineage", "describe_tuning",
    "tuning_trials", "list_tuning_jobs", "tuning_names", "tuning_log", "tuning_objectives", "default_tuning_ranges",
    "reasons_cost", "describe_transform", "list_transforms", "transform_log", "transform_output", "transform_errors",
    "transform_summary", "transform_download", "events", "catalog_health", "drift_report", "customer_data",
})

WHAT = {ANALYST: "upload, train, tune, score, plan and register", APPROVER: "approve, reject and move aliases",
        ADMIN: "deploy and change endpoints, set thresholds on serving models, restore and purge"}


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset = frozenset()

    def has(self, role: str) -> bool:
        return any(role in IMPLIES.get(granted, ()) for granted in self.roles)


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): its number
        return f"uid-{os.getuid()}"


# ---- the roles file ------------------------------------------------------------------------------------------
_CACHE: dict[str, tuple[tuple, dict]] = {}


def _roles(value: Any, where: str, path: Path) -> frozenset:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValidationError(f"{where} in the roles file {path} must be a list of role names ({', '.join(ROLES)}).")
    unknown = sorted({v.strip().lower() for v in values} - set(ROLES) - {""})
    if unknown:
        raise ValidationError(f"{where} in the roles file {path} names unknown "
                              f"{noun(len(unknown), 'role')} {', '.join(unknown)}: "
                              f"use {', '.join(ROLES)}.")
    return frozenset(v.strip().lower() for v in values if v.strip())


def read_roles_file(path: Path) -> dict:
    """``{"users": {name: roles}, "groups": {value: roles}, "default": roles, "claim": str}`` (re-read on change)."""
    try:
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        cached = _CACHE.get(str(path))
        if cached and cached[0] == key:
            return cached[1]
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError(f"The roles file {path} ({ENV}) cannot be read: {exc.strerror or exc}. "
                              f"Fix the path or unset {ENV} for one-person mode.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"The roles file {path} ({ENV}) is not valid TOML: {exc}.") from None
    users, groups = data.get("users", {}), data.get("groups", {})
    if not isinstance(users, dict) or not isinstance(groups, dict):
        raise ValidationError(f"The roles file {path} needs [users] and [groups] tables mapping names to role lists.")
    parsed = {
        "users": {str(k).strip().lower(): _roles(v, f"[users] {k!r}", path) for k, v in users.items()},
        "groups": {str(k): _roles(v, f"[groups] {k!r}", path) for k, v in groups.items()},
        "default": _roles(data.get("default_role", VIEWER), "default_role", path),
        "claim": str(data.get("claim", "") or ""),
    }
    _CACHE[str(path)] = (key, parsed)
    return parsed


def roles_file(env: dict | None = None) -> Path | None:
    raw = (os.environ if env is None else env).get(ENV, "").strip()
    return Path(raw).expanduser() if raw else None


def claim_name(env: dict | None = None) -> str:
    """The OIDC claim the roles file maps to roles ("" when none, or in one-person mode)."""
    path = roles_file(env)
    return read_roles_file(path)["claim"] if path else ""


def resolve(name: str | None = None, claims: dict | None = None, env: dict | None = None) -> User:
    """The acting user with the roles the roles file gives now (every role when there is no roles file)."""
    name = (name or "").strip() or os_user()
    path = roles_file(env)
    if path is None:
        return User(name, frozenset(ROLES))
    table = read_roles_file(path)
    granted = set(table["users"].get(name.lower(), frozenset()))
    if table["claim"] and claims:
        values = claims.get(table["claim"])
        values = [values] if isinstance(values, str) else (values or [])
        for value in values:
            granted |= table["groups"].get(str(value), frozenset())
    return User(name, frozenset(granted or table["default"]))


# ---- the check -----------------------------------------------------------------------------------------------
def _serving(platform: Any, arguments: dict) -> bool:
    """Whether the model (or registry version) a threshold is set on serves behind an endpoint now (then it takes
    an admin). One catalog read: the endpoints are not refreshed for a permission check."""
    owner = arguments.get("model_or_version", arguments.get("model"))
    if isinstance(owner, (tuple, list)):  # ("group", number or alias): the version's label names its variants
        if len(owner) != 2:
            return False  # not a version: the threshold service refuses it with its own words
        try:
            version = platform.get_version(*owner)
        except ChurnError:
            return False
        return bool(serving(platform.catalog, version.model, version.group, version.version))
    return bool(serving(platform.catalog, owner, None))  # the model, as itself or as any of its versions


# method → (the stronger role, when it applies)
ESCALATIONS: dict[str, tuple[str, Callable[[Any, dict], bool]]] = {"set_threshold": (ADMIN, _serving)}


def refusal(user: User, method: str, role: str, why: str = "") -> str:
    """Why ``user`` may not call ``method`` ("" when they may)."""
    if user.has(role):
        return ""
    held = ", ".join(sorted(user.roles)) or "none"
    return (f"{user.name} may not {method.replace('_', ' ')}{why}: that needs the {role} role ({role}s "
            f"{WHAT.get(role, 'read')}), and {user.name} has: {held}. Ask an admin to grant it in the roles file "
            f"({ENV}).")


def check(user: User, method: str, platform: Any = None, arguments: dict | None = None) -> None:
    role = METHOD_ROLES[method]
    message = refusal(user, method, role)
    if not message and method in ESCALATIONS and platform is not None:
        stronger, applies = ESCALATIONS[method]
        if applies(platform, arguments or {}):
            message = refusal(user, method, stronger, " on a model that serves behind an endpoint")
    if message:
        raise PermissionDenied(message)


def allowed(user: User, method: str) -> tuple[bool, str]:
    """(may, why not) for a page: the role check alone (escalations are checked when the call is made)."""
    if method not in METHOD_ROLES:
        return True, ""
    message = refusal(user, method, METHOD_ROLES[method])
    return not message, message


def guarded(cls):
    """Apply ``METHOD_ROLES`` to every listed method of ``cls``: check the acting user's role, then run as them."""
    for method in METHOD_ROLES:
        original = getattr(cls, method)  # AttributeError: the table names a method the class lacks
        setattr(cls, method, _guard(method, original))
    return cls


def _guard(method: str, original: Callable) -> Callable:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def call(self, *args, **kwargs):
        user = self.user
        arguments = {}
        if method in ESCALATIONS:
            arguments = signature.bind(self, *args, **kwargs).arguments
        check(user, method, self, arguments)
        with actor.acting(user.name):
            return original(self, *args, **kwargs)

    call.required_role = METHOD_ROLES[method]
    return call
