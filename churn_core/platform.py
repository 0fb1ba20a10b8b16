"""The platform: the one object pages and notebooks use (``churn_core.connect()``).

A composition root: it builds the capability services over one catalog, one object store and one
backend, and every method of the documented Python API hands the call to the service that owns
its rules. Nothing here decides anything; see ``docs/architecture.md`` for who does.
"""

from __future__ import annotations

from typing import Any, Callable

from churn_core.access import roles
from churn_core.backends import make_backend
from churn_core.backends.base import Offers
from churn_core.catalog import jobs, repair
from churn_core.catalog.database import Catalog
from churn_core.config import Settings
from churn_core.data.datasets import DatasetService
from churn_core.data.lifecycle import DataLifecycle
from churn_core.data.sample import make_sample
from churn_core.decisions import campaign
from churn_core.decisions.service import DecisionService
from churn_core.decisions.thresholds import ThresholdService
from churn_core.endpoints import scoring, tokens
from churn_core.endpoints.service import EndpointService
from churn_core.endpoints.snippets import client_snippets
from churn_core.endpoints.updates import RolloutService
from churn_core.monitoring.schedules import Schedules
from churn_core.monitoring.service import Monitoring
from churn_core.records import Dataset, Endpoint, TrainingJob, TransformJob
from churn_core.registry.model_registry import APPROVED, REJECTED, ModelVersion, Registry
from churn_core.storage.private_files import make_dirs, tighten
from churn_core.training import hyperparameters as hp
from churn_core.training.models import ModelService
from churn_core.training.service import TrainingService
from churn_core.transform.service import TransformService
from churn_core.tuning.service import TuningService


@roles.guarded  # every state-changing method checks the acting user's role and records them (access/roles.py)
class Platform:
    def __init__(self, settings: Settings | None = None, user: str | None = None, claims: dict | None = None):
        self.settings = settings or Settings.from_env()
        self._identity = ((user or "").strip() or roles.os_user(), claims)  # the roles are read again per call
        make_dirs(self.settings.home)
        tighten(self.settings.home)  # what an older version left readable by others (churn.db, job files)
        self.catalog = Catalog(self.settings.home / "churn.db")
        self.backend = make_backend(self.settings, self.catalog)
        self.store = self.backend.store
        self.datasets = DatasetService(self.catalog, self.store, self.settings.max_upload_mb * 1024 * 1024)
        self.training = TrainingService(self.catalog, self.backend, self.datasets)
        self.models = ModelService(self.catalog, self.store, self.training)
        self.registry = Registry(self.catalog, self.backend, self.settings.require_approval)
        self.endpoints = EndpointService(self.catalog, self.backend, self.settings, self.models, self.registry)
        self.rollout = RolloutService(self.catalog, self.backend, self.models, self.registry, self.endpoints)
        self.decisions = DecisionService(self.catalog, self.store, self.datasets, self.models, self.training,
                                         self.settings.max_upload_mb * 1024 * 1024)
        self.thresholds = ThresholdService(self.catalog, self.models, self.registry, self.rollout, self.decisions)
        self.transforms = TransformService(self.catalog, self.backend, self.store, self.models, self.thresholds)
        self.tuning = TuningService(self.catalog, self.backend, self.datasets)
        self.schedules = Schedules(self.catalog, self.settings.home)
        self.monitoring = Monitoring(self.catalog, self.store, self.datasets, get_model=self.models.get,
                                     model_schema=self.models.schema, test_predictions=self.decisions.test_predictions,
                                     read_customers=self.read_customers, cache=self.models.cache)
        self.backend.reconcile()
        self.schedules.reconcile()
        self.lifecycle = DataLifecycle.connected(self.catalog, self.store, self.datasets, self.settings)
        self.catalog.backup()  # on connect too (when due), not only after writes: a restore point for the session

    user = property(lambda self: roles.resolve(*self._identity), doc="The acting user, roles as the file says now.")

    offers = property(lambda self: Offers.of(self.backend), doc="What this backend offers: pages ask here, not it.")

    def check_connection(self) -> list[tuple[str, bool, str]]:
        return self.backend.check_connection()

    # ---- datasets ------------------------------------------------------------------------
    def validate_dataset(self, data: bytes, target: str = "Churn"):
        return self.datasets.validate(data, target)

    def upload_dataset(self, name: str, data: bytes, target: str = "Churn", test_size: float = 0.3,
                       seed: int = 42, source: str = "upload") -> Dataset:
        return self.datasets.upload(name, data, target=target, test_size=test_size, seed=seed, source=source)

    def load_sample(self, name: str = "sample-telecom", rows: int = 2000, seed: int = 7) -> Dataset:
        return self.upload_dataset(name, make_sample(rows=rows, seed=seed), source="synthetic sample")

    def list_datasets(self) -> list[Dataset]:
        return self.datasets.list()

    def get_dataset(self, name: str) -> Dataset:
        return self.datasets.get(name)

    def read_dataset(self, name: str, part: str = "raw", typed: bool = False):
        return self.datasets.read(name, part, typed)

    def delete_dataset(self, name: str, derived: bool = False) -> dict:
        return self.lifecycle.delete(name, derived)

    def customer_data(self):
        return self.lifecycle.customer_data()

    # ---- training jobs and their models ----------------------------------------------------
    def start_training(self, dataset: str, hyperparameters: dict | None = None, name: str | None = None,
                       instance_type: str | None = None, instance_count: int = 1) -> TrainingJob:
        return self.training.start(dataset, hyperparameters, name, instance_type, instance_count)

    def describe_training(self, name: str) -> TrainingJob:
        return self.training.describe(name)

    def list_training_jobs(self, limit: int = 100, offset: int = 0, status: str | None = None) -> list[TrainingJob]:
        return self.training.list(limit, offset, status)

    def job_names(self, limit: int = 100, offset: int = 0, status: str | None = None) -> list[str]:
        return jobs.job_names(self.catalog, limit, offset, status)

    def count_training_jobs(self, status: str | None = None) -> int:
        return jobs.count(self.catalog, status)

    def stop_training(self, name: str) -> TrainingJob:
        return self.training.stop(name)

    def training_log(self, name: str, lines: int = 200) -> str:
        return self.training.log(name, lines)

    def compare(self, names: list[str]) -> list[dict]:
        return self.training.compare(names)

    def evaluation(self, name: str) -> dict:
        return self.thresholds.evaluation(name)

    def model_schema(self, name: str) -> dict:
        return self.models.schema(name)

    def get_model(self, name: str) -> dict:
        return self.models.get(name)

    def model_threshold(self, model_or_version) -> float:
        return self.thresholds.threshold(model_or_version)

    def model_names(self) -> list[str]:
        return self.models.names()

    def list_models(self) -> list[dict]:
        return self.models.list()

    # ---- endpoints -----------------------------------------------------------------------
    def deploy(self, model: str, endpoint_name: str, instance_type: str | None = None, instance_count: int = 1,
               wait: bool = True, timeout: float = 120.0) -> Endpoint:
        """Model → endpoint config → endpoint (Creating → InService); the registry decides what may serve."""
        return self.endpoints.deploy_model(model, endpoint_name, instance_type, instance_count, wait, timeout)

    def deploy_version(self, group: str, version_or_alias: int | str, endpoint_name: str,
                       instance_type: str | None = None, instance_count: int = 1, wait: bool = True,
                       timeout: float = 120.0) -> Endpoint:  # an Approved version, by number or alias
        return self.endpoints.deploy_version(group, version_or_alias, endpoint_name, instance_type, instance_count,
                                             wait, timeout)

    def wait_for_endpoint(self, name: str, timeout: float = 120.0, uid: str | None = None) -> Endpoint:
        return self.endpoints.wait(name, timeout, uid)

    def describe_endpoint(self, name: str) -> Endpoint:
        return self.endpoints.describe(name)

    def endpoint_names(self) -> list[str]:
        return self.endpoints.names()

    def list_endpoints(self) -> list[Endpoint]:
        return self.endpoints.list()

    def client_snippets(self, name: str) -> dict[str, str]:
        ep, auth = self.describe_endpoint(name), tokens.snippet_auth(self.settings)
        return client_snippets(self.backend, ep.name, ep.url, self.model_schema(ep.model), auth)

    def endpoint_token(self, endpoint: str, rotate: bool = False) -> str:  # admin only; shown once, kept hashed
        return tokens.issue(self.catalog, self.backend, self.settings, endpoint, rotate)

    def endpoint_log(self, name: str, lines: int = 200) -> str:
        return self.endpoints.log(name, lines)

    def endpoint_traffic(self, name: str):
        return self.endpoints.traffic(name)

    def invoke(self, name: str, payload: Any, content_type: str = "application/json",
               accept: str = "application/json") -> Any:
        return self.endpoints.invoke(name, payload, content_type, accept)

    def score_customer(self, endpoint: str, record: dict, reasons: int = 5) -> dict:
        return self.endpoints.score_customer(endpoint, record, reasons)

    def read_customers(self, data: bytes):
        return scoring.read_customers(data, self.settings.max_upload_mb * 1024 * 1024)

    def score_batch(self, name: str, frame, chunk_size: int = 2000, progress: Callable[[float], None] | None = None,
                    reasons: bool = True) -> scoring.BatchResult:
        return self.endpoints.score_batch(name, frame, chunk_size, progress, reasons)

    def row_warnings(self, model: str, records: list[dict]) -> list[list[str]]:
        return scoring.record_warnings(records, self.model_schema(model))

    def field_warnings(self, model: str, record: dict) -> dict[str, str]:
        return scoring.field_warnings(record, self.model_schema(model))

    def delete_endpoint(self, name: str) -> dict:
        return self.endpoints.delete(name)

    def cleanup(self) -> list[dict]:
        return self.endpoints.cleanup()

    # ---- safe rollout ----------------------------------------------------------------------
    def update_endpoint(self, endpoint: str, group: str, version_or_alias: int | str) -> Endpoint:
        return self.rollout.update(endpoint, group, version_or_alias)

    def set_variants(self, endpoint: str, variants: list[tuple]) -> Endpoint:
        return self.rollout.set_variants(endpoint, variants)

    def promote_challenger(self, endpoint: str) -> Endpoint:
        return self.rollout.promote_challenger(endpoint)

    # ---- decisions -------------------------------------------------------------------------
    def test_predictions(self, model) -> tuple:
        return self.decisions.test_predictions(self.thresholds.model_name(model))

    def plan_campaign(self, model: str, offer_cost: float = campaign.DEFAULT_OFFER_COST,
                      customer_value: float = campaign.DEFAULT_CUSTOMER_VALUE,
                      save_rate: float = campaign.DEFAULT_SAVE_RATE,
                      budget: int | None = None, customers: int | None = None,
                      budget_money: float | None = None) -> campaign.CampaignPlan:
        return self.decisions.plan_campaign(self.thresholds.model_name(model), offer_cost, customer_value, save_rate,
                                            budget, customers, budget_money)

    def set_threshold(self, model_or_version, threshold: float, note: str | None = None,
                      plan: campaign.CampaignPlan | None = None) -> float:
        return self.thresholds.set(model_or_version, threshold, note, plan)

    def threshold_record(self, model_or_version) -> dict:
        return self.thresholds.described(model_or_version)

    def evaluate(self, model: str, data) -> dict:
        return self.decisions.evaluate(model, data)

    # ---- monitoring ------------------------------------------------------------------------
    def set_capture(self, endpoint: str, percent: float, max_mb=None, retention_days=None) -> Endpoint:
        return self.rollout.set_capture(endpoint, percent, self.monitoring.note_capture, max_mb, retention_days)

    def captured(self, endpoint: str, since: float | None = None):
        return self.monitoring.captured(endpoint, since=since)

    def drift_report(self, endpoint: str | None = None, data=None, model: str | None = None,
                     since: float | None = None, thresholds: dict | None = None):
        return self.monitoring.report(endpoint=endpoint, data=data, model=model, since=since, thresholds=thresholds)

    def drift_badge(self, endpoint: str) -> str:
        return self.schedules.badge(endpoint)

    def drift_history(self, endpoint: str, limit: int = 100) -> list[dict]:
        return self.monitoring.history(endpoint, limit)

    def baseline(self, model: str) -> dict:
        return self.monitoring.baseline(model)

    def monitoring_schedule(self, endpoint: str) -> dict | None:
        return self.schedules.get(endpoint)

    def schedule_monitoring(self, endpoint: str, every_minutes: float) -> dict:
        return self.schedules.set(endpoint, every_minutes)
    def set_drift_thresholds(self, model: str, thresholds: dict | None = None, note: str | None = None) -> dict:
        return self.monitoring.set_thresholds(model, thresholds, note)  # None: read them (and their history)
    def alert_webhook(self, url: str | None = None, test: bool = False) -> dict:  # url "" removes it
        return self.monitoring.alerts.configure(url, test)

    # ---- model registry --------------------------------------------------------------------
    def register(self, model: str, group: str | None = None, note: str | None = None) -> ModelVersion:
        trained = self.models.get(model)
        return self.registry.register(trained, (group or trained["dataset"]).strip(), note or "",
                                      trained.get("threshold"))

    def approve(self, group: str, version: int | str, note: str = "") -> ModelVersion:
        return self.registry.set_status(group, version, APPROVED, note)

    def reject(self, group: str, version: int | str, note: str = "") -> ModelVersion:
        return self.registry.set_status(group, version, REJECTED, note)

    def set_alias(self, group: str, version: int | str, alias: str) -> ModelVersion:
        return self.registry.set_alias(group, version, alias)

    def list_versions(self, group: str) -> list[ModelVersion]:
        return self.registry.versions(group)

    def get_version(self, group: str, version_or_alias: int | str) -> ModelVersion:
        return self.registry.get(group, version_or_alias)

    def model_groups(self) -> list[dict]:
        return self.registry.groups()

    def versions_of_model(self, model: str) -> list[ModelVersion]:
        return self.registry.versions_of_model(model)

    def deploy_refusal(self, version: ModelVersion) -> str:
        return self.registry.deploy_refusal(version)

    def approval_refusal(self, version: ModelVersion) -> str:  # four eyes: why the acting user may not approve it
        return self.registry.approval_refusal(version, self.user.name)

    def lineage(self, group: str) -> list[dict]:
        """dataset → training job → version → the endpoints (and variants) serving it now and before."""
        return self.registry.lineage(group)

    # ---- hyperparameter tuning -------------------------------------------------------------
    def start_tuning(self, dataset: str, ranges: dict, objective: str = "roc_auc", max_trials: int = 20,
                     max_parallel: int | None = None, strategy: str = "bayesian", algorithm: str = "random_forest",
                     name: str | None = None, seed: int = 0, max_seconds: float | None = None,
                     instance_type: str | None = None):
        """Search ``ranges`` for the best ``objective``; each trial is a training job ``<name>-NNN``."""
        return self.tuning.start(dataset, ranges, objective=objective, max_trials=max_trials,
                                 max_parallel=max_parallel, strategy=strategy, algorithm=algorithm, name=name,
                                 seed=seed, max_seconds=max_seconds, instance_type=instance_type)

    def describe_tuning(self, name: str):
        return self.tuning.describe(name)

    def tuning_trials(self, name: str):
        return self.tuning.trials(name)

    def stop_tuning(self, name: str):
        return self.tuning.stop(name)

    def delete_tuning(self, name: str) -> None:
        self.tuning.delete(name)

    def list_tuning_jobs(self, limit: int = 50):
        return self.tuning.list(limit)

    def tuning_names(self, limit: int = 100) -> list[str]:
        return self.tuning.names(limit)

    def tuning_log(self, name: str, lines: int = 200) -> str:
        return self.tuning.log(name, lines)

    def tuning_objectives(self) -> dict[str, str]:
        return self.tuning.objective_choices()

    def default_tuning_ranges(self, algorithm: str) -> dict:
        return hp.default_ranges(algorithm)

    # ---- batch transform jobs ----------------------------------------------------------------
    def start_transform(self, model: str, data, name: str | None = None, keep_columns: list[str] | None = None,
                        instance_count: int | None = None, *, file_name: str | None = None,
                        reasons: bool = False, instance_type: str | None = None) -> TransformJob:  # detached
        return self.transforms.start(model, data, name, keep_columns, instance_count, file_name, reasons, instance_type)

    def reasons_cost(self, model) -> float | None:  # seconds a line's top reason costs here (None: no reasons)
        return self.transforms.reasons_cost(model)

    def describe_transform(self, name: str) -> TransformJob:
        return self.transforms.describe(name)

    def list_transforms(self, limit: int = 100, offset: int = 0) -> list[TransformJob]:
        return self.transforms.list(limit, offset)

    def stop_transform(self, name: str) -> TransformJob:
        return self.transforms.stop(name)

    def transform_log(self, name: str, lines: int = 200) -> str:
        return self.transforms.log(name, lines)

    def transform_output(self, name: str):
        return self.transforms.output(name)

    def transform_errors(self, name: str):
        return self.transforms.errors(name)

    def transform_summary(self, name: str, top: int = 1000):
        return self.transforms.summary(name, top)

    def transform_download(self, name: str, which: str = "results") -> bytes:
        return self.transforms.download(name, which)

    # ---- audit trail and the catalog's health, backups and repair ---------------------------
    def events(self, kind: str | None = None, name: str | None = None, limit: int = 200) -> list[dict]:
        return self.catalog.events(kind, name, limit)

    def catalog_health(self):
        return repair.diagnose(self.settings.home)

    def backup_catalog(self):
        return self.catalog.backup(force=True)

    def restore_catalog_backup(self):
        """Restore the last good backup (plus what was made after it, found on disk): a ``RepairReport``."""
        return self._repaired(repair.restore_backup(self.settings.home, self.backend.local_bucket()))

    def rebuild_catalog(self):
        """Rebuild the catalog from what the old file still gives up and what is on disk: a ``RepairReport``."""
        return self._repaired(repair.rebuild(self.settings.home, self.backend.local_bucket()))

    def _repaired(self, report):  # what was cached from the catalog before the repair is forgotten
        self.models.cache.clear()
        self.transforms.cache.clear()
        return report
